-- `require "cjson"` and `require "cjson.safe"`: lua-cjson 2.1.0's behaviour in
-- plain Lua (mailpush's own code), because the C module built for the system's
-- Lua cannot load into the embedded one.
--
-- What scripts can observe is kept: the bytes `encode` produces (numbers with
-- `%.14g`, `/` written as `\/`, control characters as `\u00XX`, keys in the
-- order `next` gives them, arrays only for tables whose keys are all positive
-- integers and not too sparse), `decode` giving floats (`1.0` on Lua 5.3+) and
-- `cjson.null` for JSON null (a userdata, as in lua-cjson), the configuration
-- functions with their defaults and limits, and the error messages word for
-- word ("Cannot serialise function: type not supported", "Expected value but
-- found invalid token at character 1"). The `safe` variant returns nil and the
-- message instead of raising.

local null, getinfo = ...

local type, next, error, pcall, select, tostring, tonumber, rawget, rawequal =
  type, next, error, pcall, select, tostring, tonumber, rawget, rawequal
local format, byte, sub, find, gsub, lower, char = string.format, string.byte, string.sub,
  string.find, string.gsub, string.lower, string.char
local concat, floor, huge = table.concat, math.floor, math.huge

local VERSION = "2.1.0"
local INT_MAX = 2147483647
-- Lua 5.4 names the function in "bad argument" messages by its module field.
local QUALIFIED_NAMES = _VERSION >= "Lua 5.4"

local NAN = 0 / 0
if sub(format("%f", NAN), 1, 1) == "-" then NAN = -NAN end

local SOURCE = "=mailpush/cjson.lua"

-- As luaL_error in the C module: the position is the line that called cjson
-- (none when that is a C function such as pcall).
local function fail(message)
  local level = 2
  while true do
    local info = getinfo(level, "S")
    if info == nil then error(message, 0) end
    if info.source ~= SOURCE then break end
    level = level + 1
  end
  error(message, level)
end

local ESCAPES = {}
for i = 0, 31 do ESCAPES[char(i)] = format("\\u%04x", i) end
ESCAPES["\b"], ESCAPES["\t"], ESCAPES["\n"], ESCAPES["\f"], ESCAPES["\r"] =
  "\\b", "\\t", "\\n", "\\f", "\\r"
ESCAPES['"'], ESCAPES["\\"], ESCAPES["/"], ESCAPES["\127"] = '\\"', "\\\\", "\\/", "\\u007f"

local function quote(s)
  return '"' .. gsub(s, '[%z\1-\31"\\/\127]', ESCAPES) .. '"'
end

local UNESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", t = "\t", n = "\n",
  f = "\f", r = "\r" }

local function new(safe)
  local cfg = {
    sparse_convert = false, sparse_ratio = 2, sparse_safe = 10,
    encode_max_depth = 1000, decode_max_depth = 1000,
    -- 0 = error, 1 = write inf/nan, 2 = write null
    encode_invalid_numbers = 0, decode_invalid_numbers = true,
    encode_keep_buffer = true, encode_number_precision = 14,
  }
  local number_format = "%.14g"
  local module_name = safe and "cjson.safe." or "cjson."

  local function arg_error(n, name, message)
    fail(format("bad argument #%d to '%s' (%s)", n,
      QUALIFIED_NAMES and module_name .. name or name, message))
  end

  local function check_args(name, count, ...)
    if select("#", ...) > count then arg_error(count + 1, name, "found too many arguments") end
  end

  local function integer_option(name, key, value, min, max)
    if value ~= nil then
      local n = tonumber(value)
      if n == nil or floor(n) ~= n then
        arg_error(1, name, "number expected, got " .. type(value))
      end
      if n < min or n > max then
        arg_error(1, name, format("expected integer between %d and %d", min, max))
      end
      cfg[key] = n
    end
    return cfg[key]
  end

  local function enum_option(name, key, value, options)
    if value ~= nil then
      if type(value) == "boolean" then
        cfg[key] = value and 1 or 0
      else
        local found
        for i = 1, #options do
          if options[i] == value then found = i - 1 end
        end
        if found == nil then
          if type(value) ~= "string" then
            arg_error(1, name, "string expected, got " .. type(value))
          end
          arg_error(1, name, "invalid option '" .. value .. "'")
        end
        cfg[key] = found
      end
    end
    local setting = cfg[key]
    if setting == 0 or setting == 1 then return setting == 1 end
    return options[setting + 1]
  end

  local function bool_option(name, key, value)
    if value ~= nil then
      cfg[key] = cfg[key] and 1 or 0
      enum_option(name, key, value, { "off", "on" })
      cfg[key] = cfg[key] == 1
    end
    return cfg[key]
  end

  local M = { null = null, _NAME = "cjson", _VERSION = VERSION }

  function M.encode_sparse_array(...)
    check_args("encode_sparse_array", 3, ...)
    local convert, ratio, safe_max = ...
    return bool_option("encode_sparse_array", "sparse_convert", convert),
      integer_option("encode_sparse_array", "sparse_ratio", ratio, 0, INT_MAX),
      integer_option("encode_sparse_array", "sparse_safe", safe_max, 0, INT_MAX)
  end

  function M.encode_max_depth(...)
    check_args("encode_max_depth", 1, ...)
    return integer_option("encode_max_depth", "encode_max_depth", (...), 1, INT_MAX)
  end

  function M.decode_max_depth(...)
    check_args("decode_max_depth", 1, ...)
    return integer_option("decode_max_depth", "decode_max_depth", (...), 1, INT_MAX)
  end

  function M.encode_number_precision(...)
    check_args("encode_number_precision", 1, ...)
    local precision = integer_option("encode_number_precision", "encode_number_precision",
      (...), 1, 14)
    number_format = "%." .. precision .. "g"
    return precision
  end

  -- lua-cjson reuses one buffer between calls when on; nothing to keep here.
  function M.encode_keep_buffer(...)
    check_args("encode_keep_buffer", 1, ...)
    return bool_option("encode_keep_buffer", "encode_keep_buffer", (...))
  end

  function M.encode_invalid_numbers(...)
    check_args("encode_invalid_numbers", 1, ...)
    return enum_option("encode_invalid_numbers", "encode_invalid_numbers", (...),
      { "off", "on", "null" })
  end

  function M.decode_invalid_numbers(...)
    check_args("decode_invalid_numbers", 1, ...)
    return bool_option("decode_invalid_numbers", "decode_invalid_numbers", (...))
  end

  -- === encoding ===

  local function number(n)
    if n ~= n or n == huge or n == -huge then
      local mode = cfg.encode_invalid_numbers
      if mode == 0 then fail("Cannot serialise number: must not be NaN or Inf") end
      if mode == 2 then return "null" end
    end
    return format(number_format, n)
  end

  local function array_length(t)
    local max, items = 0, 0
    for k in next, t do
      if type(k) == "number" and k >= 1 and floor(k) == k then
        if k > max then max = k end
        items = items + 1
      else
        return -1
      end
    end
    local ratio = cfg.sparse_ratio
    if ratio > 0 and max > items * ratio and max > cfg.sparse_safe then
      if not cfg.sparse_convert then fail("Cannot serialise table: excessively sparse array") end
      return -1
    end
    return max
  end

  local append

  local function append_table(t, depth, out, n)
    depth = depth + 1
    if depth > cfg.encode_max_depth then
      fail(format("Cannot serialise, excessive nesting (%d)", depth))
    end
    local length = array_length(t)
    if length > 0 then
      n = n + 1; out[n] = "["
      for i = 1, length do
        if i > 1 then n = n + 1; out[n] = "," end
        n = append(rawget(t, i), depth, out, n)
      end
      n = n + 1; out[n] = "]"
      return n
    end
    n = n + 1; out[n] = "{"
    local comma = false
    for k, v in next, t do
      if comma then n = n + 1; out[n] = "," else comma = true end
      local kind = type(k)
      if kind == "number" then
        n = n + 1; out[n] = '"' .. number(k) .. '":'
      elseif kind == "string" then
        n = n + 1; out[n] = quote(k) .. ":"
      else
        fail("Cannot serialise " .. kind .. ": table key must be a number or string")
      end
      n = append(v, depth, out, n)
    end
    n = n + 1; out[n] = "}"
    return n
  end

  function append(value, depth, out, n)
    local kind = type(value)
    if kind == "string" then
      n = n + 1; out[n] = quote(value)
    elseif kind == "number" then
      n = n + 1; out[n] = number(value)
    elseif kind == "boolean" then
      n = n + 1; out[n] = value and "true" or "false"
    elseif kind == "table" then
      n = append_table(value, depth, out, n)
    elseif value == nil or rawequal(value, null) then
      n = n + 1; out[n] = "null"
    else
      fail("Cannot serialise " .. kind .. ": type not supported")
    end
    return n
  end

  local function encode(value)
    local out = {}
    append(value, 0, out, 0)
    return concat(out)
  end

  -- === decoding ===

  local function parse_error(expected, token, at)
    fail(format("Expected %s but found %s at character %d", expected, token, at))
  end

  local function hex4(s, i)
    local digits = sub(s, i, i + 3)
    if not find(digits, "^%x%x%x%x$") then return nil end
    return tonumber(digits, 16)
  end

  local function utf8(cp)
    if cp <= 0x7F then return char(cp) end
    if cp <= 0x7FF then
      return char(floor(cp / 64) + 0xC0, cp % 64 + 0x80)
    end
    if cp <= 0xFFFF then
      return char(floor(cp / 4096) + 0xE0, floor(cp / 64) % 64 + 0x80, cp % 64 + 0x80)
    end
    return char(floor(cp / 262144) + 0xF0, floor(cp / 4096) % 64 + 0x80,
      floor(cp / 64) % 64 + 0x80, cp % 64 + 0x80)
  end

  -- The string token starting at the quote at `i`: its value and the next position.
  local function string_token(s, i)
    local parts, n, j = {}, 0, i + 1
    while true do
      local k = find(s, '[%z"\\]', j)
      if k == nil then
        parse_error("value", "unexpected end of string", #s + 1)
      end
      if k > j then n = n + 1; parts[n] = sub(s, j, k - 1) end
      local c = sub(s, k, k)
      if c == '"' then return concat(parts), k + 1 end
      if c == "\0" then parse_error("value", "unexpected end of string", k) end
      local e = sub(s, k + 1, k + 1)
      if e == "u" then
        local cp = hex4(s, k + 2)
        local length = 6
        if cp ~= nil and cp >= 0xD800 and cp <= 0xDFFF then
          local low = sub(s, k + 6, k + 7) == "\\u" and hex4(s, k + 8) or nil
          if cp >= 0xDC00 or low == nil or low < 0xDC00 or low > 0xDFFF then
            cp = nil
          else
            cp = (cp - 0xD800) * 1024 + (low - 0xDC00) + 0x10000
            length = 12
          end
        end
        if cp == nil then parse_error("value", "invalid unicode escape code", k) end
        n = n + 1; parts[n] = utf8(cp)
        j = k + length
      else
        local plain = UNESCAPES[e]
        if plain == nil then parse_error("value", "invalid escape code", k) end
        n = n + 1; parts[n] = plain
        j = k + 2
      end
    end
  end

  -- What lua-cjson refuses with decode_invalid_numbers off: +1, 0x10, 012, inf, nan.
  local function invalid_number(s, i)
    local c = sub(s, i, i)
    if c == "+" then return true end
    if c == "-" then i = i + 1; c = sub(s, i, i) end
    if c == "0" then
      local c2 = sub(s, i + 1, i + 1)
      return c2 == "x" or c2 == "X" or find(c2, "^%d") ~= nil
    end
    if c ~= "" and c <= "9" then return false end
    local word = lower(sub(s, i, i + 2))
    return word == "inf" or word == "nan"
  end

  -- As C's strtod: the longest number at `i` (decimal, hex, inf, nan) and where it ends.
  local function scan_number(s, i)
    local sign, j = 1, i
    local c = sub(s, j, j)
    if c == "+" or c == "-" then
      if c == "-" then sign = -1 end
      j = j + 1
    end
    local _, e = find(s, "^0[xX]%x*%.?%x*", j)
    if e ~= nil and find(sub(s, j + 2, e), "%x") then
      local _, pe = find(s, "^[pP][+-]?%d+", e + 1)
      local text = sub(s, j, pe or e)
      local value = tonumber(text) or tonumber(sub(s, j + 2, e), 16)
      if value ~= nil then return sign * value, (pe or e) + 1 end
    end
    local word = lower(sub(s, j, j + 7))
    if sub(word, 1, 3) == "inf" then
      return sign * huge, j + (word == "infinity" and 8 or 3)
    end
    if sub(word, 1, 3) == "nan" then
      local _, pe = find(s, "^%([%w_]*%)", j + 3)
      return NAN, (pe or j + 2) + 1
    end
    local _, de = find(s, "^%d*%.?%d*", j)
    if de == nil or not find(sub(s, j, de), "%d") then return nil, i end
    local _, ee = find(s, "^[eE][+-]?%d+", de + 1)
    local last = ee or de
    local value = tonumber(sub(s, i, last)) * 1.0
    -- "-0" read as an integer lost its sign; strtod keeps it.
    if value == 0 and sign < 0 and 1 / value > 0 then value = -value end
    return value, last + 1
  end

  local WHITESPACE = "^[ \t\n\r]*"
  local TOKEN_NAMES = { ["{"] = "T_OBJ_BEGIN", ["}"] = "T_OBJ_END", ["["] = "T_ARR_BEGIN",
    ["]"] = "T_ARR_END", [","] = "T_COMMA", [":"] = "T_COLON" }
  local UNKNOWN = "[ftnNiI\"+%-%d]"

  -- The next token: kind ("{", "}", "[", "]", ",", ":", "end", "value", "error"),
  -- its value (or the error's name), where it starts, and where the next one may.
  local function token(s, i)
    local _, w = find(s, WHITESPACE, i)
    i = w + 1
    local c = sub(s, i, i)
    if c == "" or c == "\0" then return "end", "T_END", i, i end
    local single = TOKEN_NAMES[c]
    if single ~= nil then return c, single, i, i + 1 end
    if not find(c, UNKNOWN) then return "error", "invalid token", i, i end
    if c == '"' then
      local value, after = string_token(s, i)
      return "value", value, i, after, "T_STRING"
    end
    if c == "-" or find(c, "^%d") then
      if not cfg.decode_invalid_numbers and invalid_number(s, i) then
        return "error", "invalid number", i, i
      end
      local value, after = scan_number(s, i)
      if value == nil then return "error", "invalid number", i, i end
      return "value", value, i, after, "T_NUMBER"
    end
    if sub(s, i, i + 3) == "true" then return "value", true, i, i + 4, "T_BOOLEAN" end
    if sub(s, i, i + 4) == "false" then return "value", false, i, i + 5, "T_BOOLEAN" end
    if sub(s, i, i + 3) == "null" then return "value", null, i, i + 4, "T_NULL" end
    if cfg.decode_invalid_numbers and invalid_number(s, i) then
      local value, after = scan_number(s, i)
      if value == nil then return "error", "invalid number", i, i end
      return "value", value, i, after, "T_NUMBER"
    end
    return "error", "invalid token", i, i
  end

  local function found(kind, value, name)
    if kind == "value" then return name end
    return value
  end

  local parse_value

  local function descend(depth, after)
    depth = depth + 1
    if depth > cfg.decode_max_depth then
      fail(format("Found too many nested data structures (%d) at character %d", depth,
        after - 1))
    end
    return depth
  end

  local function parse_object(s, after, depth)
    depth = descend(depth, after)
    local result = {}
    local kind, value, at, next_i, name = token(s, after)
    if kind == "}" then return result, next_i end
    while true do
      if name ~= "T_STRING" then
        parse_error("object key string", found(kind, value, name), at)
      end
      local key = value
      kind, value, at, next_i, name = token(s, next_i)
      if kind ~= ":" then parse_error("colon", found(kind, value, name), at) end
      kind, value, at, next_i, name = token(s, next_i)
      result[key], next_i = parse_value(s, kind, value, at, next_i, name, depth)
      kind, value, at, next_i, name = token(s, next_i)
      if kind == "}" then return result, next_i end
      if kind ~= "," then parse_error("comma or object end", found(kind, value, name), at) end
      kind, value, at, next_i, name = token(s, next_i)
    end
  end

  local function parse_array(s, after, depth)
    depth = descend(depth, after)
    local result = {}
    local kind, value, at, next_i, name = token(s, after)
    if kind == "]" then return result, next_i end
    local i = 1
    while true do
      result[i], next_i = parse_value(s, kind, value, at, next_i, name, depth)
      i = i + 1
      kind, value, at, next_i, name = token(s, next_i)
      if kind == "]" then return result, next_i end
      if kind ~= "," then parse_error("comma or array end", found(kind, value, name), at) end
      kind, value, at, next_i, name = token(s, next_i)
    end
  end

  function parse_value(s, kind, value, at, next_i, name, depth)
    if kind == "value" then return value, next_i end
    if kind == "{" then return parse_object(s, next_i, depth) end
    if kind == "[" then return parse_array(s, next_i, depth) end
    parse_error("value", found(kind, value, name), at)
  end

  local function decode(s)
    if #s >= 2 and (byte(s, 1) == 0 or byte(s, 2) == 0) then
      fail("JSON parser does not support UTF-16 or UTF-32")
    end
    local kind, value, at, next_i, name = token(s, 1)
    local result
    result, next_i = parse_value(s, kind, value, at, next_i, name, 0)
    kind, value, at, next_i, name = token(s, next_i)
    if kind ~= "end" then parse_error("the end", found(kind, value, name), at) end
    return result
  end

  -- === the public functions ===

  local function checked_string(s)
    local kind = type(s)
    if kind == "number" then return tostring(s) end
    if kind ~= "string" then
      arg_error(1, "decode", "string expected, got " .. (s == nil and "nil" or kind))
    end
    return s
  end

  local function protected(ok, result)
    if ok then return result end
    return nil, result
  end

  function M.encode(...)
    if select("#", ...) ~= 1 then arg_error(1, "encode", "expected 1 argument") end
    if safe then return protected(pcall(encode, (...))) end
    return encode((...))
  end

  local function decode_checked(s)
    return decode(checked_string(s))
  end

  function M.decode(...)
    if select("#", ...) ~= 1 then arg_error(1, "decode", "expected 1 argument") end
    if safe then return protected(pcall(decode_checked, (...))) end
    return decode_checked((...))
  end

  function M.new()
    return new(safe)
  end

  return M
end

local cjson = new(false)
return cjson, function() return new(true) end
