-- Makes `require` work as scripts expect under Dovecot: the built-in
-- equivalents of the C modules scripts load (socket, socket.http, ltn12, mime,
-- cjson, ...) preloaded under their usual names, built on first `require`;
-- `package.path` as the system's Lua has it (set by Python before this runs);
-- and, last in the search, an explanation for a module that is not found —
-- C modules cannot be loaded into this embedded Lua, even when the system has
-- one of that name.

local host, calls, socket_url, library, null, c_templates = ...

local require, type, pairs, ipairs, setmetatable, rawset, sort, concat, gsub, open =
  require, type, pairs, ipairs, setmetatable, rawset, table.sort, table.concat, string.gsub,
  io.open

local preload = package.preload
-- Taken now, with the rest of the library: the modules are built later, when
-- the script may have changed the debug table.
local getinfo = debug.getinfo

-- `chunks.cjson` is lib/cjson.lua's chunk, compiled on first use.
local chunks = setmetatable({}, { __index = function(self, name)
  local chunk = library(name)
  rawset(self, name, chunk)
  return chunk
end })

local builders = {
  ["socket.url"] = function() return socket_url end,
  ltn12 = function() return chunks.ltn12() end,
  socket = function() return chunks.socket(host, calls, require("socket.url")) end,
  ["socket.core"] = function() return require("socket") end,
  ["socket.headers"] = function() return require("socket").headers end,
  ["socket.http"] = function()
    return chunks.socket_http(calls, require("socket"), require("socket.url"),
      require("ltn12"))
  end,
  mime = function() return chunks.mime(require("ltn12")) end,
  ["mime.core"] = function() return require("mime") end,
  cjson = function() return (chunks.cjson(null, getinfo)) end,
  ["cjson.safe"] = function()
    local _, new_safe = chunks.cjson(null, getinfo)
    return new_safe()
  end,
}

local names = {}
for name, build in pairs(builders) do
  names[#names + 1] = name
  preload[name] = function() return build() end
end
sort(names)
local BUILT_IN = concat(names, ", ")

-- Lua 5.4 separates the searchers' messages itself; earlier versions expect
-- each message to start with "\n\t".
local SEPARATOR = (_VERSION == "Lua 5.4" or _VERSION == "Lua 5.5") and "" or "\n\t"

local WHY = "C modules (.so) cannot be loaded: mailpush runs its own embedded Lua, and a"
  .. " C module is built against the system's Lua library, a different copy of the"
  .. " interpreter; built into mailpush instead: " .. BUILT_IN
  .. " (pure-Lua modules load from package.path: LUA_PATH_5_x/LUA_PATH, lua_path)"

local function explain(name)
  if type(name) ~= "string" then return nil end
  local file = gsub(name, "%.", "/")
  local lines = {}
  for _, template in ipairs(c_templates) do
    local path = gsub(template, "%?", (gsub(file, "%%", "%%%%")))
    local handle = open(path, "rb")
    if handle ~= nil then
      handle:close()
      lines[#lines + 1] = "found C module '" .. path .. "', which cannot be used here"
    else
      lines[#lines + 1] = "no C module '" .. path .. "'"
    end
  end
  lines[#lines + 1] = WHY
  return SEPARATOR .. concat(lines, "\n\t")
end

local searchers = package.searchers or package.loaders
searchers[#searchers + 1] = explain

return BUILT_IN
