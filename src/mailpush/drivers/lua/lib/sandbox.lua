-- The last library file loaded: closes the ways a script could get past its
-- limits or bring the whole server down, once the rest of the library has taken
-- what it needs.
--
-- The limits are a debug hook (calls.lua), so a script must not reach the hook
-- function, the registry or the library's upvalues (from which sethook is one
-- step away): `debug.gethook`, `debug.getregistry` and `debug.sethook` are
-- refused, and the upvalue and local-variable functions work on the script's
-- own functions only. Code the hook does not bound is refused too: `__gc`
-- finalizers (they run with hooks off, whenever the collector runs, or when the
-- state is closed), LuaJIT's `jit.attach`, `jit.util`, `jit.profile` and `ffi`
-- (raw memory and C calls), binary chunks (`load` of corrupt bytecode crashes
-- the process), C libraries (`package.loadlib`), reading the server's stdin
-- (`io.read`, `debug.debug`: the whole server would wait) and stopping the
-- collector. Python objects keep their shared metatable hidden. `string.rep`
-- output is bounded, so one call cannot build gigabytes inside C.
--
-- What remains unbounded: one long C call. A pattern with several quantifiers
-- given to `string.find`/`match`/`gmatch`/`gsub` can backtrack inside C, where no
-- hook runs, for hours (`(("a"):rep(3000)):find(".-.-.-b")`); its subject is
-- bounded only by lua_max_memory (response bodies by lua_http_response_max_size).
-- So is `io.open` of a FIFO, or reading a huge file.

local host, max_string = ...

local error, type, select, tostring, tonumber, rawget, rawset, pcall, setmetatable,
    getmetatable, ipairs =
  error, type, select, tostring, tonumber, rawget, rawset, pcall, setmetatable, getmetatable,
  ipairs
local sub, byte, rep, gsub, find, open =
  string.sub, string.byte, string.rep, string.gsub, string.find, io.open
local concat = table.concat
local getinfo, getupvalue, setupvalue, getlocal, setlocal =
  debug.getinfo, debug.getupvalue, debug.setupvalue, debug.getlocal, debug.setlocal
local upvalueid, upvaluejoin, real_setfenv, real_dsetfenv =
  debug.upvalueid, debug.upvaluejoin, rawget(_G, "setfenv"), debug.setfenv
local real_load, real_loadstring, real_loadfile = load, loadstring, loadfile
local collectgarbage = collectgarbage
local LUA51 = _VERSION == "Lua 5.1" and rawget(_G, "jit") == nil

local LIBRARY = "=mailpush"

local function refuse(what, why)
  return function()
    error(what .. " is not available in mailpush: " .. why, 2)
  end
end

-- Whether `fn` is a Lua function of the script's (not the library's, not C).
local function own_function(fn)
  if type(fn) ~= "function" then return false end
  local info = getinfo(fn, "S")
  return info.what ~= "C" and sub(info.source, 1, #LIBRARY) ~= LIBRARY
end

local function check_own(fn, name)
  if not own_function(fn) then
    error("bad argument #1 to '" .. name .. "' (only the script's own Lua functions: the"
      .. " library's hold the limits mailpush enforces)", 3)
  end
end

-- --- debug ---------------------------------------------------------------------

local LIMITS = "the debug hook enforces lua_max_instructions and lua_call_timeout"
debug.gethook = refuse("debug.gethook()", LIMITS)
debug.sethook = refuse("debug.sethook()", LIMITS)
debug.getregistry = refuse("debug.getregistry()", "the registry holds the hook that "
  .. "enforces lua_max_instructions and lua_call_timeout")

debug.getupvalue = function(fn, n)
  check_own(fn, "getupvalue")
  return getupvalue(fn, n)
end

debug.setupvalue = function(fn, n, value)
  check_own(fn, "setupvalue")
  return setupvalue(fn, n, value)
end

if upvalueid ~= nil then
  debug.upvalueid = function(fn, n)
    check_own(fn, "upvalueid")
    return upvalueid(fn, n)
  end
end

if upvaluejoin ~= nil then
  debug.upvaluejoin = function(f1, n1, f2, n2)
    check_own(f1, "upvaluejoin")
    if not own_function(f2) then
      error("bad argument #3 to 'upvaluejoin' (only the script's own Lua functions)", 2)
    end
    return upvaluejoin(f1, n1, f2, n2)
  end
end

-- `getlocal(f, n)` only names parameters; a stack level must be one of the
-- script's frames (a level counts from the caller, one more from here).
local function frame_is_own(thread, level)
  local info
  if thread ~= nil then info = getinfo(thread, level, "S") else info = getinfo(level + 2, "S") end
  return info == nil or (info.what ~= "C" and sub(info.source, 1, #LIBRARY) ~= LIBRARY)
end

local function local_access(real, name)
  return function(first, ...)
    if type(first) == "thread" then
      local level = ...
      if type(level) == "number" and not frame_is_own(first, level) then
        error("bad argument #2 to '" .. name .. "' (only the script's own stack frames)", 2)
      end
      return real(first, ...)
    end
    if type(first) ~= "number" then return real(first, ...) end
    if not frame_is_own(nil, first) then
      error("bad argument #1 to '" .. name .. "' (only the script's own stack frames)", 2)
    end
    -- Not a tail call: this function's frame must stay, the level counts it.
    local found, value = real(first + 1, ...)
    return found, value
  end
end

debug.getlocal = local_access(getlocal, "getlocal")
debug.setlocal = local_access(setlocal, "setlocal")

-- No metatable may be set on other types (strings, numbers, functions: the
-- library's code uses them), nor hidden metatables read.
debug.getmetatable = getmetatable

local function check_metatable(mt, name)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("bad argument #2 to '" .. name .. "' (__gc finalizers are not available in"
      .. " mailpush: they run outside the script's limits)", 3)
  end
end

_G.setmetatable = function(t, mt)
  check_metatable(mt, "setmetatable")
  return (setmetatable(t, mt))
end

debug.setmetatable = function(value, mt)
  if type(value) ~= "table" then
    error("bad argument #1 to 'setmetatable' (only tables: the metatables of other types"
      .. " are shared with mailpush's library)", 2)
  end
  check_metatable(mt, "setmetatable")
  return setmetatable(value, mt)
end

if real_setfenv ~= nil then
  -- Lua 5.1/LuaJIT: a library function's environment is where it looks its globals up.
  _G.setfenv = function(target, env)
    if type(target) == "number" then
      if target > 0 and not frame_is_own(nil, target) then
        error("bad argument #1 to 'setfenv' (only the script's own functions)", 2)
      end
      if target > 0 then target = target + 1 end
    else
      check_own(target, "setfenv")
    end
    local result = real_setfenv(target, env)
    return result
  end
end
if real_dsetfenv ~= nil then
  debug.setfenv = function(target, env)
    if type(target) == "function" then check_own(target, "setfenv") end
    return real_dsetfenv(target, env)
  end
end

-- `newproxy(true)` gives a userdata whose metatable can take a __gc.
if rawget(_G, "newproxy") ~= nil then
  _G.newproxy = refuse("newproxy()", "its __gc finalizer would run outside the script's limits")
end

-- --- Python objects ---------------------------------------------------------------

-- The host functions (and any Python object a script holds) share lupa's
-- metatable. It is hidden: a script replacing its __call would run inside the
-- limit hook, which calls host.now. And each use runs with the memory limit
-- suspended, then restored: lupa converts values outside Lua's error handling,
-- where running out of memory would hang the process instead of raising.
local PYTHON = getmetatable(host.now)
local suspend, enforce = host.memory_suspend, host.memory_enforce
if suspend ~= nil then
  local raw_call = rawget(PYTHON, "__call")
  local function settle(was_strict, ok, ...)
    if was_strict then raw_call(enforce) end
    if not ok then error((...), 0) end
    return ...
  end
  for _, event in ipairs({ "__call", "__index", "__newindex", "__tostring" }) do
    local real = rawget(PYTHON, event)
    if real ~= nil then
      rawset(PYTHON, event, function(object, ...)
        if object == suspend or object == enforce then return real(object, ...) end
        return settle(raw_call(suspend), pcall(real, object, ...))
      end)
    end
  end
end
rawset(PYTHON, "__metatable", "Python object")

-- --- stdin ----------------------------------------------------------------------

-- Reading the server's stdin waits for input with everything stopped.
debug.debug = refuse("debug.debug()", "it reads commands from the server's stdin")
local nothing = open("/dev/null", "r")
if nothing ~= nil then
  io.input(nothing)
  io.stdin = nothing
end

-- --- the collector -------------------------------------------------------------

local GC_ALLOWED = { collect = true, count = true, step = true, isrunning = true,
  restart = true }

_G.collectgarbage = function(option, ...)
  if option ~= nil and not GC_ALLOWED[option] then
    error("bad argument #1 to 'collectgarbage' ('" .. tostring(option) .. "' is not available"
      .. " in mailpush: the collector keeps the state within lua_max_memory; collect,"
      .. " count, step, isrunning and restart are)", 2)
  end
  return collectgarbage(option, ...)
end

-- --- chunks: source only, never bytecode ---------------------------------------

local BINARY = "attempt to load a binary chunk (mode is 't'): mailpush loads Lua source only"
  .. " (corrupt bytecode would crash the server)"

local function check_name(chunkname)
  if type(chunkname) == "string" and sub(chunkname, 1, #LIBRARY) == LIBRARY then
    error("bad argument #2 to 'load' (chunk names starting with '" .. LIBRARY
      .. "' are mailpush's own)", 3)
  end
end

-- A reader whose first piece must not start a binary chunk.
local function text_reader(reader)
  local first = true
  return function()
    local piece = reader()
    if first and type(piece) == "string" and piece ~= "" then
      first = false
      if byte(piece, 1) == 27 then error(BINARY, 0) end
    end
    return piece
  end
end

local function text_load(chunk, chunkname, _mode, ...)
  check_name(chunkname)
  if type(chunk) == "string" then
    if byte(chunk, 1) == 27 then return nil, BINARY end
  elseif type(chunk) == "function" then
    chunk = text_reader(chunk)
    if LUA51 then
      local ok, fn, message = pcall(real_load, chunk, chunkname)
      if not ok then return nil, fn end
      return fn, message
    end
  end
  if LUA51 then return real_loadstring(chunk, chunkname) end
  return real_load(chunk, chunkname, "t", ...)
end

_G.load = text_load
if real_loadstring ~= nil then
  _G.loadstring = function(chunk, chunkname, _mode, ...)
    return text_load(chunk, chunkname, "t", ...)
  end
end

local STDIN = "reading a chunk from stdin would stop the whole mail server (give a file name)"

local function text_loadfile(filename, _mode, ...)
  if filename == nil then return nil, STDIN end
  if not LUA51 then
    local fn, problem = real_loadfile(filename, "t", ...)
    -- LuaJIT says "attempt to load chunk with wrong mode"; give every version's reason.
    if fn == nil and find(tostring(problem), "chunk with wrong mode", 1, true) then
      problem = BINARY
    end
    return fn, problem
  end
  local file, problem = open(filename, "rb")
  if file == nil then return nil, "cannot open " .. tostring(problem) end
  local source = file:read("*a")
  file:close()
  if source == nil then return nil, "cannot read " .. filename end
  if byte(source, 1) == 27 then return nil, BINARY end
  -- As loadfile: a first line starting with # is skipped (kept empty for line numbers).
  if byte(source, 1) == 35 then source = gsub(source, "^#[^\n]*", "", 1) end
  return real_loadstring(source, "@" .. filename)
end

_G.loadfile = text_loadfile

_G.dofile = function(filename)
  local fn, message = text_loadfile(filename)
  if fn == nil then error(message, 2) end
  return fn()
end

-- --- require: Lua files as source, no C libraries ------------------------------

local package = package
local searchers = package.searchers or package.loaders
local searchpath = package.searchpath

local function find_file(name, path)
  if searchpath ~= nil then return searchpath(name, path) end
  local file_name = gsub(name, "%.", "/")
  local tried = {}
  for template in (path .. ";"):gmatch("([^;]*);") do
    if template ~= "" then
      local candidate = gsub(template, "%?", (gsub(file_name, "%%", "%%%%")))
      local handle = open(candidate, "r")
      if handle ~= nil then
        handle:close()
        return candidate
      end
      tried[#tried + 1] = "\n\tno file '" .. candidate .. "'"
    end
  end
  return nil, concat(tried)
end

local function lua_searcher(name)
  local filename, tried = find_file(name, package.path)
  if filename == nil then return tried end
  local chunk, problem = text_loadfile(filename)
  if chunk == nil then
    error("error loading module '" .. tostring(name) .. "' from file '" .. filename .. "':\n\t"
      .. tostring(problem), 0)
  end
  return chunk, filename
end

-- Lua's own: 1 preload, 2 Lua files, 3 and 4 C libraries (cpath, all-in-one); then
-- whatever the library added (modules.lua explains a module found nowhere).
local function is_c(fn) return type(fn) == "function" and getinfo(fn, "S").what == "C" end
local kept = { searchers[1] }
for i = 2, #searchers do
  local searcher = searchers[i]
  if i == 2 and is_c(searcher) then
    kept[#kept + 1] = lua_searcher
  elseif i > 4 or not is_c(searcher) then
    kept[#kept + 1] = searcher
  end
end
for i = #searchers, 1, -1 do searchers[i] = nil end
for i = 1, #kept do searchers[i] = kept[i] end

package.cpath = ""
package.loadlib = refuse("package.loadlib()", "C libraries cannot be loaded into the"
  .. " embedded Lua (a wrong one crashes the whole server)")

-- --- LuaJIT ----------------------------------------------------------------------

local jit = rawget(_G, "jit")
if jit ~= nil then
  local RAW = "it gives scripts raw memory and C functions, beyond every limit"
  for _, name in ipairs({ "ffi", "jit.util", "jit.profile", "string.buffer" }) do
    package.loaded[name] = nil
    -- Level 3: the error names the script's line that called require.
    package.preload[name] = function()
      error("require \"" .. name .. "\" is not available in mailpush: " .. RAW, 3)
    end
  end
  local safe = { version = jit.version, version_num = jit.version_num, os = jit.os,
    arch = jit.arch, status = jit.status, flush = jit.flush, off = jit.off, on = jit.on,
    opt = jit.opt,
    attach = refuse("jit.attach()", "its callbacks run outside the script's limits") }
  _G.jit = safe
  package.loaded.jit = safe
end

-- --- string.rep ------------------------------------------------------------------

if max_string > 0 then
  string.rep = function(s, n, sep)
    local size = #tostring(s) * (tonumber(n) or 0)
    if sep ~= nil and (tonumber(n) or 0) > 1 then size = size + #tostring(sep) * (n - 1) end
    if size > max_string then
      error("bad argument #2 to 'rep' (the result would be " .. size .. " bytes; at most "
        .. max_string .. " in mailpush, which builds it in one step no limit can stop)", 2)
    end
    return rep(s, n, sep)
  end
end

return true
