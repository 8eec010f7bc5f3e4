-- dovecot.i_debug/i_info/i_warning/i_error and dovecot.event(): logging
-- through mailpush's log, with Dovecot's event methods (names, fields, log
-- prefixes, passthrough events).

local host = ...

local M = {}

local getinfo, tostring, tonumber, setmetatable, getmetatable, pairs, type, error =
  debug.getinfo, tostring, tonumber, setmetatable, getmetatable, pairs, type, error
local log, debug_enabled = host.log, host.debug_enabled

function M.i_debug(message) log("debug", tostring(message)) end
function M.i_info(message) log("info", tostring(message)) end
function M.i_warning(message) log("warning", tostring(message)) end
function M.i_error(message) log("error", tostring(message)) end

local Event = {}
Event.__index = Event
M.Event = Event

local function new_event(parent, source)
  return setmetatable({
    _parent = parent, _name = nil, _fields = {}, _prefix = nil, _replace = false,
    _source = source, _always_source = false, _forced_debug = false,
  }, Event)
end

local root = new_event(nil, nil)

local function source_of(level)
  local info = getinfo(level, "Sl")
  if info == nil or info.currentline == nil or info.currentline < 0 then return nil end
  return info.short_src .. ":" .. info.currentline
end

--- dovecot.event([parent]): a new event, child of `parent` or of the script's event.
function M.event(parent)
  if parent ~= nil and getmetatable(parent) ~= Event then
    error("bad argument #1 to 'event' (event expected, got " .. type(parent) .. ")", 2)
  end
  return new_event(parent or root, source_of(3))
end

local function check(self, name)
  if getmetatable(self) ~= Event then
    error("bad argument #1 to '" .. name .. "' (event expected; call it as event:" .. name
      .. "(...))", 3)
  end
end

local function prefix_of(event)
  if event == nil then return "" end
  if event._prefix == nil then return prefix_of(event._parent) end
  if event._replace then return event._prefix end
  return prefix_of(event._parent) .. event._prefix
end

local function name_of(event)
  while event ~= nil do
    if event._name ~= nil then return event._name end
    event = event._parent
  end
  return nil
end

local function fields_of(event)
  local chain = {}
  while event ~= nil do
    chain[#chain + 1] = event
    event = event._parent
  end
  local fields, any = {}, false
  for i = #chain, 1, -1 do
    for key, value in pairs(chain[i]._fields) do
      fields[key] = value
      any = true
    end
  end
  if any then return fields end
  return nil
end

local function debug_wanted(event)
  while event ~= nil do
    if event._forced_debug then return true end
    event = event._parent
  end
  return debug_enabled()
end

local function emit(self, level, message)
  if level == "debug" and not debug_wanted(self) then return self end
  local text = prefix_of(self) .. tostring(message)
  if self._always_source and self._source ~= nil then text = self._source .. ": " .. text end
  log(level, text, name_of(self), fields_of(self))
  return self
end

function Event:append_log_prefix(prefix)
  check(self, "append_log_prefix")
  if self._replace then
    self._prefix = self._prefix .. tostring(prefix)
  else
    self._prefix = (self._prefix or "") .. tostring(prefix)
  end
  return self
end

function Event:replace_log_prefix(prefix)
  check(self, "replace_log_prefix")
  self._prefix = tostring(prefix)
  self._replace = true
  return self
end

function Event:set_always_log_source()
  check(self, "set_always_log_source")
  self._always_source = true
  return self
end

function Event:set_name(name)
  check(self, "set_name")
  self._name = tostring(name)
  return self
end

function Event:add_str(key, value)
  check(self, "add_str")
  self._fields[tostring(key)] = tostring(value)
  return self
end

function Event:add_int(key, value)
  check(self, "add_int")
  local number = tonumber(value)
  if number == nil then
    error("bad argument #2 to 'add_int' (number expected, got " .. type(value) .. ")", 2)
  end
  self._fields[tostring(key)] = number
  return self
end

function Event:add_timeval(key, seconds)
  check(self, "add_timeval")
  self._fields[tostring(key)] = tonumber(seconds) or 0
  return self
end

function Event:inc_int(key, value)
  check(self, "inc_int")
  key = tostring(key)
  self._fields[key] = (tonumber(self._fields[key]) or 0) + (tonumber(value) or 0)
  return self
end

function Event:set_forced_debug()
  check(self, "set_forced_debug")
  self._forced_debug = true
  return self
end

function Event:unset_forced_debug()
  check(self, "unset_forced_debug")
  self._forced_debug = false
  return self
end

function Event:log_debug(message) check(self, "log_debug"); return emit(self, "debug", message) end
function Event:log_info(message) check(self, "log_info"); return emit(self, "info", message) end
function Event:log_warning(message)
  check(self, "log_warning")
  return emit(self, "warning", message)
end
function Event:log_error(message) check(self, "log_error"); return emit(self, "error", message) end

--- A copy of the event that is sent once it is logged (Dovecot's passthrough event).
function Event:passthrough_event()
  check(self, "passthrough_event")
  local copy = new_event(self, self._source)
  copy._always_source = self._always_source
  copy.passthrough_event = function()
    error("a passthrough event has no passthrough_event()", 2)
  end
  return copy
end

return M
