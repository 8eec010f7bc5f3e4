-- The `dovecot` global scripts see (Dovecot's dlua_dovecot_register), plus
-- `mailpush`: what only mailpush offers (asking for a retry or a dead letter).

local host, calls, bits, log, http, storage = ...

local type, tostring, error, setmetatable, rawset, select, floor =
  type, tostring, error, setmetatable, rawset, select, math.floor
local char, byte, concat, gsub = string.char, string.byte, table.concat, string.gsub

local dovecot = {
  i_debug = log.i_debug,
  i_info = log.i_info,
  i_warning = log.i_warning,
  i_error = log.i_error,
  event = log.event,
  http = { client = http.client },
  storage = storage.constants,
}

local function number_arg(value, position, name)
  if type(bits.mask(value)) ~= "number" then
    error("bad argument #" .. position .. " to '" .. name .. "' (number expected, got "
      .. type(value) .. ")", 3)
  end
end

function dovecot.has_flag(value, flag)
  number_arg(value, 1, "has_flag")
  number_arg(flag, 2, "has_flag")
  return bits.band(value, flag) == bits.band(flag, flag)
end

function dovecot.set_flag(value, flag)
  number_arg(value, 1, "set_flag")
  number_arg(flag, 2, "set_flag")
  return bits.bor(value, flag)
end

function dovecot.clear_flag(value, flag)
  number_arg(value, 1, "clear_flag")
  number_arg(flag, 2, "clear_flag")
  return bits.band_not(value, flag)
end

local restricted = {
  __index = function(_, name)
    error("attempt to write to read undeclared global variable " .. tostring(name), 2)
  end,
  __newindex = function(globals, name, value)
    if type(value) ~= "function" then
      error("attempt to write to undeclared global variable " .. tostring(name), 2)
    end
    rawset(globals, name, value)
  end,
}

function dovecot.restrict_global_variables(enable)
  if enable then setmetatable(_G, restricted) else setmetatable(_G, nil) end
end

-- Dovecot 2.4 additions that need nothing from the mail server.

function dovecot.gettimeofday()
  local now = host.wall_time()
  local seconds = floor(now)
  return seconds, floor((now - seconds) * 1000000)
end

function dovecot.nanoseconds() return floor(host.wall_time() * 1000000000) end
function dovecot.microseconds() return floor(host.wall_time() * 1000000) end

local TAB_ESCAPES = { ["\1"] = "\0011", ["\t"] = "\1t", ["\r"] = "\1r", ["\n"] = "\1n",
  ["\0"] = "\0010" }
local TAB_UNESCAPES = { ["1"] = "\1", t = "\t", r = "\r", n = "\n", ["0"] = "\0" }

function dovecot.tabescape(text)
  return (gsub(tostring(text), "[%z\1\t\r\n]", TAB_ESCAPES))
end

function dovecot.tabunescape(text)
  return (gsub(tostring(text), "\1(.)", function(c) return TAB_UNESCAPES[c] or c end))
end

function dovecot.split_tabescaped(text)
  local out = {}
  for field in string.gmatch(tostring(text) .. "\t", "([^\t]*)\t") do
    out[#out + 1] = dovecot.tabunescape(field)
  end
  return out
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_VALUE = {}
for i = 1, 64 do B64_VALUE[byte(B64, i)] = i - 1 end

dovecot.base64 = {}

function dovecot.base64.encode(text)
  text = tostring(text)
  local out = {}
  for i = 1, #text, 3 do
    local a, b, c = byte(text, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1, d2 = floor(n / 262144), floor(n / 4096) % 64
    local d3, d4 = floor(n / 64) % 64, n % 64
    out[#out + 1] = char(byte(B64, d1 + 1), byte(B64, d2 + 1))
      .. (b and char(byte(B64, d3 + 1)) or "=") .. (c and char(byte(B64, d4 + 1)) or "=")
  end
  return concat(out)
end

function dovecot.base64.decode(text)
  text = gsub(tostring(text), "[^%w%+/]", "")
  local out = {}
  for i = 1, #text, 4 do
    local n, count = 0, 0
    for j = i, i + 3 do
      local value = B64_VALUE[byte(text, j) or -1]
      if value ~= nil then
        n, count = n * 64 + value, count + 1
      else
        n = n * 64
      end
    end
    local a, b, c = floor(n / 65536), floor(n / 256) % 256, n % 256
    out[#out + 1] = char(a)
    if count > 2 then out[#out + 1] = char(b) end
    if count > 3 then out[#out + 1] = char(c) end
  end
  return concat(out)
end

local mailpush = {}

--- Ask mailpush to run the whole transaction again later (with backoff).
function mailpush.retry_later(reason) calls.signal("retry_later", reason) end

--- Give up on this transaction: it becomes a dead letter (`mailpush queue dead`).
function mailpush.dead_letter(reason) calls.signal("dead_letter", reason) end

return dovecot, mailpush
