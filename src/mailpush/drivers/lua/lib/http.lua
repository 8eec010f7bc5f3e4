-- dovecot.http.client{...}: HTTP requests that yield to Python instead of
-- blocking. `submit()` hands the request to the event loop (pooled aiohttp
-- session) and the script resumes when the response is there; connection
-- failures come back as Dovecot's 9000-range status codes, not as errors.

local host, calls, check = ...

local M = {}

local type, tostring, setmetatable, error, select, lower, find, format, rawget =
  type, tostring, setmetatable, error, select, string.lower, string.find, string.format, rawget

-- RFC 9110 tokens (methods, header names) and the control characters no header
-- value may carry (a decoded subject can hold CR LF): checked here, so the script
-- gets an error at its own line instead of a request that cannot be sent.
local TOKEN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"
local CONTROL = "[%z\1-\8\10-\31\127]"

local Client = {}
Client.__index = Client
local Request = {}
Request.__index = Request
local Response = {}
Response.__index = Response

--- dovecot.http.client(options): options as Dovecot 2.3 (and 2.4) name them.
function M.client(options)
  if options == nil then options = {} end
  if type(options) ~= "table" then
    error("bad argument #1 to 'client' (table expected, got " .. type(options) .. ")", 2)
  end
  local ok, settings = host.http_client(options)
  if not ok then error(settings, 2) end
  return setmetatable({ _settings = settings }, Client)
end

function Client:request(spec)
  check(self, Client, "request", "client")
  if type(spec) ~= "table" then
    error("bad argument #1 to 'request' (table expected, got " .. type(spec) .. ")", 2)
  end
  local url, method = spec.url, spec.method
  if url == nil then error("cannot create request: url not specified", 2) end
  url = tostring(url)
  if method == nil then method = "GET" end
  method = tostring(method)
  if not find(method, TOKEN) then
    error("cannot create request: invalid method " .. format("%q", method)
      .. " (a token such as GET or POST expected)", 2)
  end
  local problem = host.http_check_url(url)
  if problem ~= nil then error("Failed to parse url " .. url .. ": " .. problem, 2) end
  return setmetatable({ _client = self._settings, _url = url, _method = method, _headers = {},
    _payload = nil }, Request)
end

function Request:add_header(name, value)
  check(self, Request, "add_header", "request")
  name, value = tostring(name), tostring(value)
  if not find(name, TOKEN) then
    error("add_header: invalid header name " .. format("%q", name)
      .. " (letters, digits and !#$%&'*+-.^_`|~ only)", 2)
  end
  if find(value, CONTROL) then
    error("add_header: the value of header '" .. name .. "' contains CR, LF, NUL or another"
      .. " control character (a decoded subject can); remove them first, e.g."
      .. " value:gsub(\"%c\", \" \")", 2)
  end
  local headers = self._headers
  headers[#headers + 1] = name
  headers[#headers + 1] = value
end

function Request:remove_header(name)
  check(self, Request, "remove_header", "request")
  local wanted, kept = lower(tostring(name)), {}
  local headers = self._headers
  for i = 1, #headers, 2 do
    if lower(headers[i]) ~= wanted then
      kept[#kept + 1] = headers[i]
      kept[#kept + 1] = headers[i + 1]
    end
  end
  self._headers = kept
end

function Request:set_payload(payload, _sync)
  check(self, Request, "set_payload", "request")
  if type(payload) ~= "string" and type(payload) ~= "number" then
    error("bad argument #1 to 'set_payload' (string expected, got " .. type(payload) .. ")", 2)
  end
  self._payload = tostring(payload)
end

-- Python reads what submit() hands over outside the script's call, where no limit
-- runs: plain strings in a fresh table only, whatever the script did to the fields.
local function plain_headers(headers)
  local copy = {}
  if type(headers) ~= "table" then return copy end
  local i = 1
  while i < 10000 do
    local name, value = rawget(headers, i), rawget(headers, i + 1)
    if type(name) ~= "string" or type(value) ~= "string" then break end
    copy[i], copy[i + 1] = name, value
    i = i + 2
  end
  return copy
end

local function plain_string(value)
  if type(value) == "string" then return value end
  return nil
end

function Request:submit()
  check(self, Request, "submit", "request")
  local ok, status, reason, headers, payload = calls.io("http", self._client,
    plain_string(self._method) or "GET", plain_string(self._url) or "", plain_headers(self._headers),
    plain_string(self._payload))
  if not ok then error(status, 2) end
  return setmetatable({ _status = status, _reason = reason, _headers = headers,
    _payload = payload }, Response)
end

function Response:status()
  check(self, Response, "status", "response")
  return self._status
end

function Response:reason()
  check(self, Response, "reason", "response")
  return self._reason
end

function Response:header(name)
  check(self, Response, "header", "response")
  return self._headers[lower(tostring(name))] or ""
end

function Response:payload()
  check(self, Response, "payload", "response")
  return self._payload
end

return M
