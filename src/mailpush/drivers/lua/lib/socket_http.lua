-- `require "socket.http"`: LuaSocket's HTTP client API (mailpush's own code)
-- on the server's shared HTTP pool. The request does not block: like
-- `dovecot.http` `submit()`, the script yields and resumes with the answer,
-- so the server keeps delivering mail — where Dovecot's LMTP process stalls.
--
--   http.request(url [, body]) -> body, code, headers, status line
--     (with a body: a POST with content-type application/x-www-form-urlencoded)
--   http.request{url=, method=, headers=, source=, sink=, redirect=, maxredirects=, proxy=}
--     -> 1, code, headers, status line
--   on failure: nil, "connection refused" | "timeout" | "host not found" | ...
--
-- As LuaSocket: the method defaults to GET, header names are sent in their
-- canonical form, `user-agent` is http.USERAGENT unless the script sets one,
-- GET and HEAD follow up to 5 redirects unless `redirect = false`, the response
-- headers come back with lower-case names, `proxy` (or http.PROXY) is an HTTP
-- proxy's URL. http.TIMEOUT (seconds, 60) bounds
-- the whole request. Unlike LuaSocket, the body is sent with a Content-Length
-- (never chunked) and the connection is kept for the next request (no
-- `connection: close, TE`).

local calls, socket, url, ltn12 = ...

local type, tostring, tonumber, pairs, error, lower, concat =
  type, tostring, tonumber, pairs, error, string.lower, table.concat

local M = { TIMEOUT = 60, USERAGENT = socket._VERSION, PORT = 80 }

local canonic = socket.headers.canonic
-- Set from the body the script gives, or meaningless for a pooled connection.
local DROPPED = { ["content-length"] = true, ["transfer-encoding"] = true,
  ["connection"] = true, ["te"] = true }

local function header_name(name)
  return canonic[name] or name
end

-- The URL to request: the script's own string when it gave one, so the bytes
-- of path and query arrive as written.
local function target_url(reqt)
  if reqt.url ~= nil and reqt.host == nil and reqt.path == nil and reqt.port == nil
      and reqt.query == nil and reqt.scheme == nil then
    return tostring(reqt.url)
  end
  local parts = url.parse(reqt.url and tostring(reqt.url) or "", { scheme = "http",
    path = "/" }) or { scheme = "http", path = "/" }
  for _, key in pairs({ "scheme", "host", "port", "path", "params", "query", "user",
      "password" }) do
    if reqt[key] ~= nil then parts[key] = reqt[key] end
  end
  parts.authority = nil
  if parts.host == nil or parts.host == "" then return nil, parts.host end
  return url.build(parts)
end

local function request_table(reqt)
  local target, bad_host = target_url(reqt)
  if target == nil then return nil, "invalid host '" .. tostring(bad_host) .. "'" end
  local parsed = url.parse(target, { scheme = "http", path = "/" })
  if parsed == nil or parsed.host == nil or parsed.host == "" then
    return nil, "invalid host '" .. tostring(parsed and parsed.host) .. "'"
  end
  if parsed.scheme ~= "http" and parsed.scheme ~= "https" then
    return nil, "unknown scheme '" .. tostring(parsed.scheme) .. "'"
  end
  local method = reqt.method
  if method == nil or method == "" then method = "GET" end
  method = tostring(method)

  local headers = { ["user-agent"] = M.USERAGENT }
  if type(reqt.headers) == "table" then
    for name, value in pairs(reqt.headers) do headers[lower(tostring(name))] = tostring(value) end
  end
  local flat = {}
  for name, value in pairs(headers) do
    if not DROPPED[name] then
      flat[#flat + 1] = header_name(name)
      flat[#flat + 1] = value
    end
  end

  local body
  if reqt.source ~= nil then
    local chunks = {}
    local ok, err = ltn12.pump.all(reqt.source, ltn12.sink.table(chunks), reqt.step)
    if not ok then return nil, err end
    body = concat(chunks)
  end

  local redirects = 0
  if reqt.redirect ~= false and body == nil and (method == "GET" or method == "HEAD") then
    redirects = reqt.maxredirects == false and 1000 or tonumber(reqt.maxredirects) or 5
  end

  local proxy = reqt.proxy or M.PROXY
  local ok, code, reason, received, payload, status = calls.io("socket_http", method,
    target, flat, body, tonumber(M.TIMEOUT) or 60, redirects, proxy and tostring(proxy) or nil)
  if not ok then error(code, 3) end
  if code == nil then return nil, reason end

  if reqt.sink ~= nil and method ~= "HEAD" and code ~= 204 and code ~= 304
      and (code < 100 or code >= 200) then
    local pumped, err = ltn12.pump.all(ltn12.source.string(payload), reqt.sink, reqt.step)
    if not pumped then return nil, err end
  end
  return 1, code, received, status
end

--- Both of LuaSocket's forms; see the top of this file.
function M.request(reqt, body)
  if type(reqt) == "string" then
    local chunks = {}
    local spec = { url = reqt, sink = ltn12.sink.table(chunks) }
    if body ~= nil then
      body = tostring(body)
      spec.method = "POST"
      spec.source = ltn12.source.string(body)
      spec.headers = { ["content-length"] = #body,
        ["content-type"] = "application/x-www-form-urlencoded" }
    end
    local ok, code, headers, status = request_table(spec)
    if not ok then return nil, code end
    return concat(chunks), code, headers, status
  end
  if type(reqt) ~= "table" then
    error("bad argument #1 to 'request' (string or table expected, got " .. type(reqt) .. ")",
      2)
  end
  local ok, code, headers, status = request_table(reqt)
  if not ok then return nil, code end
  return ok, code, headers, status
end

socket.http = M
return M
