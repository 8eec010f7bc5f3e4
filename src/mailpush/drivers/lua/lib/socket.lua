-- `require "socket"` (and `socket.core`, `socket.headers`): the parts of
-- LuaSocket's core module a push script can use inside a mail server
-- (mailpush's own code). `gettime` reads the clock; `sleep` waits without
-- stopping the server (the script yields to the event loop, as `submit()`
-- does); `socket.url`, `socket.headers` and, once required, `socket.http` hang
-- off the table as in LuaSocket. Raw TCP/UDP sockets would block the whole
-- server, so `tcp()`, `udp()`, `connect()`, `bind()` and `select()` raise an
-- error saying what to use instead.

local host, calls, url = ...

local error, type, select, setmetatable, getmetatable, ipairs, tonumber, pcall =
  error, type, select, setmetatable, getmetatable, ipairs, tonumber, pcall

-- Debian's lua-socket 3.1.0 reports 3.0.0, and sends it as the User-Agent.
local M = { _VERSION = "LuaSocket 3.0.0", BLOCKSIZE = 2048, url = url }

local NO_RAW_SOCKETS = "raw sockets are not available in mailpush: a push script runs inside"
  .. " the mail server, where a socket waiting for the network would stop every other"
  .. " delivery; send HTTP requests with socket.http or dovecot.http.client instead"

local function refuse(name)
  return function() error("socket." .. name .. "(): " .. NO_RAW_SOCKETS, 2) end
end

for _, name in ipairs({ "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "connect", "connect4",
    "connect6", "bind", "select", "socketpair" }) do
  M[name] = refuse(name)
end
M.dns = setmetatable({}, { __index = function(_, name)
  if type(name) ~= "string" then return nil end
  return refuse("dns." .. name)
end })

--- Seconds since the epoch, with sub-second precision.
function M.gettime()
  return host.wall_time()
end

--- Waits `seconds` while the server keeps running (the script yields).
function M.sleep(seconds)
  seconds = tonumber(seconds)
  if seconds == nil then
    error("bad argument #1 to 'sleep' (number expected)", 2)
  end
  if seconds <= 0 then return end
  local ok, message = calls.io("sleep", seconds)
  if not ok then error(message, 2) end
end

--- `socket.skip(d, ...)`: the arguments after the first `d`.
function M.skip(d, ...)
  return select(d + 1, ...)
end

-- socket.try / socket.newtry / socket.protect, as LuaSocket's exception helpers:
-- try raises a wrapped error that a protect()ed function returns as nil, message.
local TRY = {}

function M.newtry(finalizer)
  return function(...)
    local ok, message = ...
    if not ok then
      if finalizer then finalizer() end
      error(setmetatable({ message }, TRY), 0)
    end
    return ...
  end
end

M.try = M.newtry()

local function unwrap(ok, ...)
  if ok then return ... end
  local err = ...
  if type(err) == "table" and getmetatable(err) == TRY then return nil, err[1] end
  error(err, 0)
end

function M.protect(f)
  return function(...) return unwrap(pcall(f, ...)) end
end

--- `socket.headers`: header names as LuaSocket writes them, by lower-case name (its list).
local canonic = {}
for _, name in ipairs({
  "Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Action",
  "Age", "Allow", "Alternate-Recipient", "Arrival-Date", "Authorization", "Bcc",
  "Cache-Control", "Cc", "Comments", "Connection", "Content-Description",
  "Content-Disposition", "Content-Encoding", "Content-ID", "Content-Language",
  "Content-Length", "Content-Location", "Content-MD5", "Content-Range",
  "Content-Transfer-Encoding", "Content-Type", "Cookie", "DSN-Gateway", "Date",
  "Diagnostic-Code", "ETag", "Expect", "Expires", "Final-Log-ID", "Final-Recipient", "From",
  "Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
  "In-Reply-To", "Keywords", "Last-Attempt-Date", "Last-Modified", "Location", "MIME-Version",
  "Max-Forwards", "Message-ID", "Original-Envelope-ID", "Original-Recipient", "Pragma",
  "Proxy-Authenticate", "Proxy-Authorization", "Range", "Received", "Received-From-MTA",
  "References", "Referer", "Remote-MTA", "Reply-To", "Reporting-MTA", "Resent-Bcc",
  "Resent-Cc", "Resent-Date", "Resent-From", "Resent-Message-ID", "Resent-Reply-To",
  "Resent-Sender", "Resent-To", "Retry-After", "Return-Path", "SMTP-Remote-Recipient",
  "Sender", "Server", "Status", "Subject", "TE", "To", "Trailer", "Transfer-Encoding",
  "Upgrade", "User-Agent", "Vary", "Via", "WWW-Authenticate", "Warning", "Will-Retry-Until",
  "X-Mailer",
}) do
  canonic[string.lower(name)] = name
end
M.headers = { canonic = canonic }

return M
