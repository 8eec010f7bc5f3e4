-- `require "ltn12"`: sources, sinks, pumps and filters with the API and
-- conventions of LuaSocket's LTN12 module (mailpush's own code), so scripts
-- that build `socket.http` request bodies with `ltn12.source.string` and
-- collect responses with `ltn12.sink.table` run unchanged.
--
-- Conventions (LTN12): a source returns the next chunk, nil at the end, or
-- nil and an error; a sink takes a chunk (nil at the end) and an optional
-- error and returns 1, or nil and an error; a filter takes a chunk and
-- returns what it can produce so far, and flushes on nil.

local error, select, unpack = error, select, table.unpack or unpack
local sub, remove = string.sub, table.remove

local M = { _VERSION = "LTN12 1.0.3", BLOCKSIZE = 2048 }
local filter, source, sink, pump = {}, {}, {}, {}
M.filter, M.source, M.sink, M.pump = filter, source, sink, pump

local function is_nonempty(chunk)
  return chunk ~= nil and chunk ~= ""
end

--- A filter from a low-level function `low(ctx, chunk, extra)` → `out, ctx`.
function filter.cycle(low, ctx, extra)
  return function(chunk)
    local out
    out, ctx = low(ctx, chunk, extra)
    return out
  end
end

-- Two filters in a row: at the end of the stream, what `first` still had goes
-- through `second`, which is then flushed too.
local function chain_two(first, second)
  return function(chunk)
    if chunk ~= nil then return second(first(chunk) or "") end
    local rest = first(nil)
    if is_nonempty(rest) then
      local out, tail = second(rest), second(nil)
      if tail == nil then return out end
      return (out or "") .. tail
    end
    return second(nil)
  end
end

--- One filter made of several, applied left to right.
function filter.chain(...)
  local count = select("#", ...)
  local chained = ...
  for i = 2, count do chained = chain_two(chained, (select(i, ...))) end
  return chained
end

function source.empty()
  return function() return nil end
end

function source.error(err)
  return function() return nil, err end
end

--- Reads `handle` in BLOCKSIZE chunks and closes it at the end.
function source.file(handle, io_err)
  if not handle then return source.error(io_err or "unable to open file") end
  return function()
    local chunk = handle:read(M.BLOCKSIZE)
    if not chunk then handle:close() end
    return chunk
  end
end

--- Turns a "fancy" source (that may return a replacement source) into a plain one.
function source.simplify(src)
  return function()
    local chunk, err_or_new = src()
    src = err_or_new or src
    if not chunk then return nil, err_or_new end
    return chunk
  end
end

function source.string(s)
  if not s then return source.empty() end
  local i = 1
  return function()
    local chunk = sub(s, i, i + M.BLOCKSIZE - 1)
    i = i + M.BLOCKSIZE
    if chunk ~= "" then return chunk end
    return nil
  end
end

function source.table(t)
  if not t then return source.empty() end
  local i = 0
  return function()
    i = i + 1
    return t[i]
  end
end

--- A source whose chunks can be pushed back: `src(chunk)` puts one back.
function source.rewind(src)
  local pushed = {}
  return function(chunk)
    if chunk == nil then
      chunk = remove(pushed)
      if chunk == nil then return src() end
      return chunk
    end
    pushed[#pushed + 1] = chunk
  end
end

--- `src` seen through one or more filters.
function source.chain(src, f, ...)
  if select("#", ...) > 0 then f = filter.chain(f, ...) end
  local finished = false
  return function()
    while not finished do
      local chunk, err = src()
      if err then return nil, err end
      local out = f(chunk)
      if chunk == nil then
        finished = true
        if is_nonempty(out) then return out end
      elseif out == nil then
        error("filter returned inappropriate nil", 2)
      elseif out ~= "" then
        return out
      end
    end
    return nil
  end
end

--- The chunks of every source, one after the other.
function source.cat(...)
  local sources = { ... }
  local i = 1
  return function()
    while sources[i] ~= nil do
      local chunk, err = sources[i]()
      if chunk then return chunk end
      if err then return nil, err end
      i = i + 1
    end
    return nil
  end
end

--- Stores chunks in `t` (a new table by default); returns the sink and the table.
function sink.table(t)
  t = t or {}
  local function store(chunk)
    if chunk then t[#t + 1] = chunk end
    return 1
  end
  return store, t
end

function sink.simplify(snk)
  return function(chunk, err)
    local ret, err_or_new = snk(chunk, err)
    if not ret then return nil, err_or_new end
    snk = err_or_new or snk
    return 1
  end
end

--- Writes to `handle`, closing it at the end.
function sink.file(handle, io_err)
  if not handle then return sink.error(io_err or "unable to open file") end
  return function(chunk)
    if not chunk then
      handle:close()
      return 1
    end
    return handle:write(chunk)
  end
end

function sink.null()
  return function() return 1 end
end

function sink.error(err)
  return function() return nil, err end
end

--- `snk` behind one or more filters: `sink.chain(f, snk)` or `sink.chain(f1, f2, snk)`.
function sink.chain(f, snk, ...)
  if select("#", ...) > 0 then
    local all = { f, snk, ... }
    snk = remove(all)
    f = filter.chain(unpack(all))
  end
  return function(chunk, err)
    if chunk == "" then return 1 end
    local out = f(chunk)
    if chunk ~= nil then
      if is_nonempty(out) then return snk(out, err) end
      return 1
    end
    if is_nonempty(out) then
      local ret, snk_err = snk(out, err)
      if not ret then return nil, snk_err end
    end
    return snk(nil, err)
  end
end

--- Moves one chunk; returns 1, or nil (and the error) at the end.
function pump.step(src, snk)
  local chunk, src_err = src()
  local ret, snk_err = snk(chunk, src_err)
  if chunk and ret then return 1 end
  return nil, src_err or snk_err
end

--- Moves everything; returns 1, or nil and the first error.
function pump.all(src, snk, step)
  step = step or pump.step
  while true do
    local ret, err = step(src, snk)
    if not ret then
      if err then return nil, err end
      return 1
    end
  end
end

return M
