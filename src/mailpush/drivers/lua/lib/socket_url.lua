-- `require "socket.url"`: URL escaping, parsing and building with the
-- behaviour of LuaSocket's module of that name (mailpush's own code), so
-- Dovecot push scripts that use it run without LuaSocket installed.
--
-- escape() encodes every byte except letters, digits and "_" as lowercase
-- %xx, exactly what Dovecot's example scripts send.

local M = { _VERSION = "URL 1.0.3 (mailpush)" }

local format, byte, char, gsub, find, sub, match = string.format, string.byte,
  string.char, string.gsub, string.find, string.sub, string.match
local tonumber, tostring, type, pairs, concat = tonumber, tostring, type, pairs, table.concat

local function percent(c) return format("%%%02x", byte(c)) end

-- Replacement tables, not functions: gsub then substitutes in C, so escaping a
-- subject of a megabyte costs no Lua instructions (a function per byte ran a
-- script into lua_max_instructions, and its notification was lost).
local ESCAPED, UNESCAPED, SEGMENT = {}, {}, {}
-- Characters a path segment may hold unescaped (RFC 2396 pchar).
local SEGMENT_SAFE = {}
for c in ("-_.!~*'():@&=+$,"):gmatch(".") do SEGMENT_SAFE[c] = true end
for code = 0, 255 do
  local c = char(code)
  ESCAPED[c] = percent(c)
  SEGMENT[c] = SEGMENT_SAFE[c] and c or percent(c)
  local hex = format("%02x", code)
  local high, low = sub(hex, 1, 1), sub(hex, 2, 2)
  for _, h in ipairs({ high, high:upper() }) do
    for _, l in ipairs({ low, low:upper() }) do
      UNESCAPED[h .. l] = c
    end
  end
end

function M.escape(s)
  return (gsub(s, "[^A-Za-z0-9_]", ESCAPED))
end

function M.unescape(s)
  return (gsub(s, "%%(%x%x)", UNESCAPED))
end

local function protect_segment(s)
  return (gsub(s, "[^A-Za-z0-9_]", SEGMENT))
end

--- Splits a URL into its parts; `default` supplies parts the URL lacks.
function M.parse(url, default)
  local parsed = {}
  for key, value in pairs(default or parsed) do parsed[key] = value end
  if type(url) ~= "string" or url == "" then return nil, "invalid url" end
  parsed.url = url
  url = gsub(url, "#(.*)$", function(fragment) parsed.fragment = fragment; return "" end)
  url = gsub(url, "^([%w][%w%+%-%.]*)%:", function(scheme) parsed.scheme = scheme; return "" end)
  url = gsub(url, "^//([^/%?#]*)", function(authority) parsed.authority = authority; return "" end)
  url = gsub(url, "%?(.*)", function(query) parsed.query = query; return "" end)
  url = gsub(url, "%;(.*)", function(params) parsed.params = params; return "" end)
  if url ~= "" then parsed.path = url end
  local authority = parsed.authority
  if authority == nil then return parsed end
  authority = gsub(authority, "^([^@]*)@", function(userinfo)
    parsed.userinfo = userinfo
    return ""
  end)
  authority = gsub(authority, ":([^:%]]*)$", function(port) parsed.port = port; return "" end)
  if authority ~= "" then
    parsed.host = match(authority, "^%[(.+)%]$") or authority
  end
  local userinfo = parsed.userinfo
  if userinfo == nil then return parsed end
  local user, password = match(userinfo, "^([^:]*):(.*)$")
  if user ~= nil then
    parsed.user, parsed.password = user, password
  else
    parsed.user = userinfo
  end
  return parsed
end

--- Splits a path into unescaped segments.
function M.parse_path(path)
  local parsed = {}
  path = path or ""
  for segment in gsub(path, "([^/]+)", "%1/"):gmatch("([^/]*)/") do
    if segment ~= "" then parsed[#parsed + 1] = M.unescape(segment) end
  end
  if sub(path, 1, 1) == "/" then parsed.is_absolute = 1 end
  if path ~= "" and sub(path, -1) == "/" then parsed.is_directory = 1 end
  return parsed
end

--- Joins segments into a path, escaping them unless `unsafe`.
function M.build_path(parsed, unsafe)
  local segments = {}
  for i = 1, #parsed do
    segments[i] = unsafe and parsed[i] or protect_segment(parsed[i])
  end
  local path = concat(segments, "/")
  if #parsed > 0 then
    if parsed.is_absolute then path = "/" .. path end
    if parsed.is_directory then path = path .. "/" end
  elseif parsed.is_absolute or parsed.is_directory then
    path = "/"
  end
  return path
end

--- The URL for a table of parts (the inverse of parse).
function M.build(parsed)
  local url = M.build_path(M.parse_path(parsed.path or ""))
  if parsed.params then url = url .. ";" .. parsed.params end
  if parsed.query then url = url .. "?" .. parsed.query end
  local authority = parsed.authority
  if parsed.host then
    authority = parsed.host
    if find(authority, ":", 1, true) then authority = "[" .. authority .. "]" end
    if parsed.port then authority = authority .. ":" .. tostring(parsed.port) end
    local userinfo = parsed.userinfo
    if parsed.user then
      userinfo = parsed.user
      if parsed.password then userinfo = userinfo .. ":" .. parsed.password end
    end
    if userinfo then authority = userinfo .. "@" .. authority end
  end
  if authority then url = "//" .. authority .. url end
  if parsed.scheme then url = parsed.scheme .. ":" .. url end
  if parsed.fragment then url = url .. "#" .. parsed.fragment end
  return url
end

-- RFC 3986 section 5.2.4.
local function remove_dot_segments(path)
  local output = {}
  local input = path
  while input ~= "" do
    if sub(input, 1, 3) == "../" then
      input = sub(input, 4)
    elseif sub(input, 1, 2) == "./" then
      input = sub(input, 3)
    elseif sub(input, 1, 3) == "/./" then
      input = sub(input, 3)
    elseif input == "/." then
      input = "/"
    elseif sub(input, 1, 4) == "/../" or input == "/.." then
      input = "/" .. sub(input, 5)
      output[#output] = nil
    elseif input == "." or input == ".." then
      input = ""
    else
      local segment = match(input, "^/?[^/]*")
      output[#output + 1] = segment
      input = sub(input, #segment + 1)
    end
  end
  return concat(output)
end

local function merge(base_path, relative_path)
  if sub(relative_path, 1, 1) == "/" then return remove_dot_segments(relative_path) end
  local directory = gsub(base_path, "[^/]*$", "")
  return remove_dot_segments(directory .. relative_path)
end

--- Resolves `relative_url` against `base_url` (a URL or a parsed table).
function M.absolute(base_url, relative_url)
  local base = type(base_url) == "table" and base_url or M.parse(base_url)
  if base == nil then return relative_url end
  local relative = M.parse(relative_url)
  if relative == nil then
    return type(base_url) == "table" and M.build(base_url) or base_url
  end
  if relative.scheme then return relative_url end
  relative.scheme = base.scheme
  if relative.authority == nil then
    relative.authority = base.authority
    relative.host, relative.port = base.host, base.port
    relative.user, relative.password, relative.userinfo = base.user, base.password, base.userinfo
    if relative.path == nil then
      relative.path = base.path
      if relative.params == nil then
        relative.params = base.params
        if relative.query == nil then relative.query = base.query end
      end
    else
      local base_path = base.path or ""
      if base_path == "" and base.authority ~= nil then base_path = "/" end
      relative.path = merge(base_path, relative.path)
    end
  end
  return M.build(relative)
end

return M
