-- Event tables handed to the notify handlers, and flag sets.
--
-- Dovecot passes `flags` as an array of names ("\\Seen"); its documentation
-- describes a bitmask (`event.flags & 8`). A flag set is that array with
-- metamethods that make it act as the bitmask wherever Lua lets a table do
-- so: the bitwise operators (Lua 5.3+), arithmetic (`flags % 16 >= 8`),
-- `..`, `tostring`, `tonumber` and `string.format("%d")`. On Lua 5.1/5.2/
-- LuaJIT, which have no bitwise operators, `bit.band`/`bit32.band` and
-- `dovecot.has_flag` accept flag sets instead. What no table can do: be
-- `==` to a number (`flags == 0` is always false; `tonumber(flags) == 0`
-- works), nor, on 5.1 and LuaJIT, be compared with `<` to one.

local M = {}

local unpack = table.unpack or unpack
local compile = loadstring or load

local BITS = {
  ["\\Answered"] = 1, ["\\Flagged"] = 2, ["\\Deleted"] = 4,
  ["\\Seen"] = 8, ["\\Draft"] = 16, ["\\Recent"] = 32,
}

local FlagSet = {}
M.FlagSet = FlagSet

--- The bitmask of a flag set; any other value is returned as it is.
local function mask(value)
  if type(value) == "table" and getmetatable(value) == FlagSet then
    local bits = 0
    for i = 1, #value do bits = bits + (BITS[value[i]] or 0) end
    return bits
  end
  return value
end
M.mask = mask

FlagSet.__lt = function(a, b) return mask(a) < mask(b) end
FlagSet.__le = function(a, b) return mask(a) <= mask(b) end
FlagSet.__add = function(a, b) return mask(a) + mask(b) end
FlagSet.__sub = function(a, b) return mask(a) - mask(b) end
FlagSet.__mul = function(a, b) return mask(a) * mask(b) end
FlagSet.__div = function(a, b) return mask(a) / mask(b) end
FlagSet.__mod = function(a, b) return mask(a) % mask(b) end
FlagSet.__pow = function(a, b) return mask(a) ^ mask(b) end
FlagSet.__unm = function(a) return -mask(a) end
FlagSet.__tostring = function(a) return tostring(mask(a)) end
FlagSet.__concat = function(a, b)
  if getmetatable(a) == FlagSet then a = tostring(mask(a)) end
  if getmetatable(b) == FlagSet then b = tostring(mask(b)) end
  return a .. b
end

-- `tonumber(flags)` and `string.format("%d", flags)` see the bitmask.
local raw_tonumber, raw_format, select = tonumber, string.format, select
tonumber = function(value, ...)
  if getmetatable(value) == FlagSet then return mask(value) end
  return raw_tonumber(value, ...)
end
string.format = function(template, ...)
  local n = select("#", ...)
  for i = 1, n do
    if getmetatable((select(i, ...))) == FlagSet then
      local args = { ... }
      for j = i, n do args[j] = mask(args[j]) end
      return raw_format(template, unpack(args, 1, n))
    end
  end
  return raw_format(template, ...)
end

-- Lua 5.3+ only: in older versions `&` is not even valid syntax.
local bitwise = compile([[
  local FlagSet, mask = ...
  FlagSet.__band = function(a, b) return mask(a) & mask(b) end
  FlagSet.__bor = function(a, b) return mask(a) | mask(b) end
  FlagSet.__bxor = function(a, b) return mask(a) ~ mask(b) end
  FlagSet.__bnot = function(a) return ~mask(a) end
  FlagSet.__shl = function(a, b) return mask(a) << mask(b) end
  FlagSet.__shr = function(a, b) return mask(a) >> mask(b) end
  FlagSet.__idiv = function(a, b) return mask(a) // mask(b) end
  return true
]], "=mailpush/events.lua(bitwise)")
if bitwise then bitwise(FlagSet, mask) end

-- LuaJIT's `bit` and Lua 5.2's `bit32` take flag sets too.
for _, name in ipairs({ "bit", "bit32" }) do
  local lib = rawget(_G, name)
  if type(lib) == "table" then
    for _, fn in ipairs({ "band", "bor", "bxor", "bnot", "btest", "lshift", "rshift", "tobit" }) do
      local original = lib[fn]
      if original ~= nil then
        lib[fn] = function(...)
          local args = { ... }
          for i = 1, select("#", ...) do args[i] = mask(args[i]) end
          return original(unpack(args, 1, select("#", ...)))
        end
      end
    end
  end
end

local ORDER = { "\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent" }

--- A flag set from a bitmask, names in Dovecot's order (dlua_push_flags).
local function flag_set(bits)
  local names, bit = {}, 1
  for i = 1, #ORDER do
    if bits % (bit * 2) >= bit then names[#names + 1] = ORDER[i] end
    bit = bit * 2
  end
  return setmetatable(names, FlagSet)
end
M.flag_set = flag_set

function M.mailbox_event(name, user, mailbox, mailbox_old)
  return { name = name, user = user, mailbox = mailbox, mailbox_old = mailbox_old }
end

function M.message_event(name, user, mailbox, uid, uid_validity)
  return { name = name, user = user, mailbox = mailbox, uid = uid, uid_validity = uid_validity }
end

-- Flags arrive as bitmasks, keyword lists as tables or nil (none).

function M.flags_set_event(user, mailbox, uid, uid_validity, flags, keywords)
  keywords = keywords or {}
  return {
    name = "FlagsSet", user = user, mailbox = mailbox, uid = uid, uid_validity = uid_validity,
    flags = flag_set(flags), keywords = keywords, keywords_set = keywords,
  }
end

function M.flags_clear_event(user, mailbox, uid, uid_validity, flags, keywords, flags_old,
                             keywords_old)
  keywords = keywords or {}
  return {
    name = "FlagsClear", user = user, mailbox = mailbox, uid = uid, uid_validity = uid_validity,
    flags = flag_set(flags), keywords = keywords, keywords_clear = keywords,
    flags_old = flag_set(flags_old), keywords_old = keywords_old or {},
  }
end

function M.saved_event(name, user, mailbox, uid, uid_validity, flags, keywords, date, tz,
                       from, to, from_address, from_display_name, to_address, to_display_name,
                       subject, snippet, message_id)
  return {
    name = name, user = user, mailbox = mailbox, uid = uid, uid_validity = uid_validity,
    flags = flag_set(flags), keywords = keywords or {}, date = date, tz = tz,
    from = from, to = to, from_address = from_address, from_display_name = from_display_name,
    to_address = to_address, to_display_name = to_display_name, subject = subject,
    snippet = snippet, message_id = message_id,
  }
end

return M
