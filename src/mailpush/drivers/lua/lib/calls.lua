-- Every call into a push script runs as a coroutine that Python drives.
--
-- Python starts a call with `start(fn_or_name, max_instructions, deadline,
-- deadline_reason, ...)` and resumes it with `resume(call, ...)` for as long as
-- the answer is "io": the script asked for I/O (an HTTP request, a mailbox
-- status, metadata) and yielded; Python performs it on the event loop and
-- resumes the coroutine with the result. A script waiting for its endpoint
-- therefore never blocks the server, and different users' scripts wait
-- concurrently.
--
-- Limits: a count hook on every coroutine of a call checks the instruction
-- budget and the wall-clock deadline (the call's lua_call_timeout or the
-- transaction's lua_txn_timeout, whichever comes first). When one is exceeded the call is
-- "killed": from then on the hook raises on every instruction of script code,
-- so a script that catches the error with pcall cannot carry on.
--
-- Coroutines the script creates itself are adopted into the running call
-- (same limits) and relay our I/O yields upwards, so `submit()` also works
-- inside the script's own coroutines.

local host = ...

local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.status
-- Lua 5.3+ and LuaJIT 2.1; nil on 5.1, 5.2 and LuaJIT 2.0.
local co_isyieldable = coroutine.isyieldable
local sethook, getinfo, traceback = debug.sethook, debug.getinfo, debug.traceback
local error, type, select, tostring, rawget, setmetatable, getmetatable =
  error, type, select, tostring, rawget, setmetatable, getmetatable
local sub, find = string.sub, string.find
local pairs = pairs
-- Taken now: a script may assign another table to its global `_G`.
local G = _G
local now = host.now
-- Memory: lua_max_memory holds only while the script runs (from start/resume until
-- they return), so no value Python hands over can fail outside a protected call
-- (engine/limits.py, MemoryBudget). nil without a memory limit.
local enforce_memory, suspend_memory = host.memory_enforce, host.memory_suspend

local M = {}

-- Instructions between two limit checks: the hook costs a Python call for the
-- clock, so it must not run too often.
local STEP = 10000
local LIBRARY_SOURCE = "=mailpush"
local WEAK_KEYS = { __mode = "k" }

-- Unique markers: a yield carrying IO is a request to Python; an error value
-- carrying SIGNAL is a mailpush.retry_later()/dead_letter() request.
local IO = setmetatable({}, { __tostring = function() return "mailpush I/O request" end })
local SIGNAL = {}
M.IO = IO
M.SIGNAL = SIGNAL

local current = nil -- the call running now (calls into one state never overlap)

local function kill_hook()
  local call = current
  if call == nil or not call.killed then return end
  local info = getinfo(2, "S")
  if info ~= nil and sub(info.source, 1, #LIBRARY_SOURCE) ~= LIBRARY_SOURCE then
    error(call.reason, 2)
  end
end

local function kill(call, reason)
  call.killed = true
  call.reason = reason
  sethook(call.co, kill_hook, "", 1)
  for co in pairs(call.threads or {}) do
    if co_status(co) ~= "dead" then sethook(co, kill_hook, "", 1) end
  end
end

local function limit_hook()
  local call = current
  if call == nil or call.killed then return end
  call.used = call.used + STEP
  local reason
  if call.max_instructions > 0 and call.used > call.max_instructions then
    reason = "aborted: more than " .. call.max_instructions
      .. " Lua instructions in one call (lua_max_instructions)"
  elseif call.deadline > 0 and now() > call.deadline then
    reason = call.deadline_reason
  end
  if reason ~= nil then
    kill(call, reason)
    error(reason, 2)
  end
end

local function hook(call, co)
  if call.killed then
    sethook(co, kill_hook, "", 1)
  elseif call.max_instructions > 0 or call.deadline > 0 then
    sethook(co, limit_hook, "", STEP)
  end
end

-- A coroutine of the script joins the running call: same budget, same fate.
local function adopt(co)
  local call = current
  if call == nil or type(co) ~= "thread" or co == call.co then return end
  local threads = call.threads
  if threads == nil then
    threads = setmetatable({}, WEAK_KEYS)
    call.threads = threads
  end
  if not threads[co] then
    threads[co] = true
    hook(call, co)
  end
end

-- What a script sees when it waits for I/O where Lua cannot pause it.
local WAITING = { http = "submit()", mailbox_open = "mailbox:open()",
  mailbox_status = "mailbox:status()", metadata_get = "metadata_get()",
  metadata_set = "metadata_set()", metadata_list = "metadata_list()",
  socket_http = "socket.http.request()", sleep = "socket.sleep()" }
local NOT_YIELDABLE = "cannot wait for the server here: Lua cannot pause a script inside"
  .. " string.gsub/gmatch callbacks, table.sort comparators, metamethods (__tostring,"
  .. " __index, ...), the top level of a require'd module, or (Lua 5.1) pcall; call it"
  .. " outside those (attempt to yield across a C-call boundary)"

-- A table's own __tostring runs as a call of its own, with a small budget: here,
-- outside the call's coroutine, nothing else would stop it (nor the coroutines it
-- creates, which `adopt` hooks only while a call is current).
local TOSTRING_INSTRUCTIONS = 100000
local function bounded_tostring(value)
  local co = co_create(function(v) return tostring(v) end)
  local call = { co = co, used = 0, max_instructions = TOSTRING_INSTRUCTIONS, deadline = 0,
    deadline_reason = nil, killed = false, reason = nil, threads = nil }
  hook(call, co)
  local outer = current
  current = call
  local ok, text = co_resume(co, value)
  current = outer
  if ok and co_status(co) == "dead" and type(text) == "string" then return text end
  return "(error object is a table value)"
end

local function describe(value)
  if type(value) == "string" then return value end
  local mt = getmetatable(value)
  if type(value) == "table" and mt ~= nil and mt.__tostring ~= nil then
    return bounded_tostring(value)
  end
  -- A Python exception raised by a host function arrives as userdata.
  if type(value) == "userdata" then return tostring(value) end
  if value == nil then return "nil" end
  return "(error object is a " .. type(value) .. " value)"
end

local function explain(message)
  if find(message, "attempt to yield across", 1, true) ~= nil
      and find(message, NOT_YIELDABLE, 1, true) == nil then
    return message .. " (" .. NOT_YIELDABLE .. ")"
  end
  return message
end

local function finish(call, ok, first, ...)
  current = nil
  if ok then
    if co_status(call.co) == "dead" then return "done", first, ... end
    if first == IO then return "io", ... end
    return "error", traceback(call.co, "attempt to yield from outside a coroutine"), nil, false
  end
  if type(first) == "table" and first[SIGNAL] ~= nil then
    return "signal", first[SIGNAL], first.reason
  end
  local message = explain(describe(first))
  if call.killed and find(message, call.reason, 1, true) == nil then message = call.reason end
  -- Also when the script caught the memory error and raised it again with its position.
  return "error", traceback(call.co, message), call.killed and call.reason or nil,
    find(message, "not enough memory", 1, true) ~= nil
end

-- Back in Python's hands: values crossing over cannot fail for lack of memory.
local function lifted(...)
  if suspend_memory ~= nil then suspend_memory() end
  return ...
end

--- Starts a call of `fn` (a function, or the name of a global function).
-- Returns the call (nil if there is nothing to call) and the first answer.
function M.start(fn, max_instructions, deadline, deadline_reason, ...)
  if type(fn) ~= "function" then
    local name = fn
    fn = rawget(G, name)
    if type(fn) ~= "function" then
      return nil, "error", "'" .. tostring(name) .. "' is not a function", nil, false
    end
  end
  local co = co_create(fn)
  local call = {
    co = co, used = 0, max_instructions = max_instructions, deadline = deadline,
    deadline_reason = deadline_reason, killed = false, reason = nil, threads = nil,
  }
  hook(call, co)
  current = call
  if enforce_memory ~= nil then enforce_memory() end
  return lifted(call, finish(call, co_resume(co, ...)))
end

--- Resumes a call that answered "io" with Python's result.
function M.resume(call, ...)
  current = call
  if enforce_memory ~= nil then enforce_memory() end
  return lifted(finish(call, co_resume(call.co, ...)))
end

--- Asks Python for I/O. Returns `true, results...` or `false, message`;
-- aborts the call if Python says its time is up.
function M.io(kind, ...)
  if current == nil then
    return false, "I/O is only possible inside a push notification call"
  end
  if co_isyieldable ~= nil and not co_isyieldable() then
    return false, (WAITING[kind] or tostring(kind)) .. " " .. NOT_YIELDABLE
  end
  return M.answer(co_yield(IO, kind, ...))
end

function M.answer(ok, ...)
  if ok == "abort" then
    local call = current
    local reason = ...
    if call ~= nil then kill(call, reason) end
    error(reason, 0)
  end
  return ok, ...
end

--- Whether the global `name` is a function, read without metamethods
-- (restrict_global_variables may be on).
function M.is_function(name)
  return type(rawget(G, name)) == "function"
end

--- The names in `names` that are global functions, as a bitmask (bit i = names[i]).
function M.defined(names)
  local mask, bit = 0, 1
  for i = 1, #names do
    if type(rawget(G, names[i])) == "function" then mask = mask + bit end
    bit = bit * 2
  end
  return mask
end

--- A signal the script raises to ask the framework to retry or bury the transaction.
function M.signal(kind, reason)
  error({ [SIGNAL] = kind, reason = tostring(reason or kind) }, 2)
end

-- The script's own coroutines: adopted into the call, relaying our I/O.
local function relay(co, ok, first, ...)
  if ok and first == IO and co_status(co) == "suspended" then
    return relay(co, co_resume(co, co_yield(IO, ...)))
  end
  return ok, first, ...
end

local function wrapped_create(fn)
  local co = co_create(fn)
  adopt(co)
  return co
end

local function wrapped_resume(co, ...)
  adopt(co)
  return relay(co, co_resume(co, ...))
end

local function unwrap(ok, ...)
  if ok then return ... end
  error((...), 0)
end

coroutine.create = wrapped_create
coroutine.resume = wrapped_resume
coroutine.wrap = function(fn)
  local co = wrapped_create(fn)
  return function(...) return unwrap(wrapped_resume(co, ...)) end
end

-- The hooks are the limits: the script may not replace them, nor reach them
-- through the registry (where Lua keeps the hook functions).
debug.sethook = function()
  error("debug.sethook() is not available: mailpush uses the hook to enforce its"
    .. " limits (lua_max_instructions, lua_call_timeout)", 2)
end
debug.getregistry = function()
  error("debug.getregistry() is not available: it would let a script remove the hook"
    .. " mailpush enforces its limits with", 2)
end

return M
