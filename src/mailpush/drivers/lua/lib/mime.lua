-- `require "mime"` (and `mime.core`): LuaSocket's MIME module in plain Lua
-- (mailpush's own code). The low-level functions keep LuaSocket's incremental
-- form — `A, B = mime.b64(C [, D])` encodes what of C..D can be encoded and
-- returns the rest, with D nil meaning "end of data, pad" — so they also work
-- as ltn12 filters through `mime.encode`, `mime.decode`, `mime.wrap`,
-- `mime.normalize` and `mime.stuff`. Counts come back as floats, as the C
-- module pushes them (`76.0` on Lua 5.3+).

local ltn12 = ...

local type, error, tonumber, tostring = type, error, tonumber, tostring
local byte, char, sub, gsub, find, format = string.byte, string.char, string.sub, string.gsub,
  string.find, string.format
local concat, floor = table.concat, math.floor

local CRLF, EQCRLF = "\r\n", "=\r\n"
local M = { _VERSION = "MIME 1.0.3" }

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_VALUE = {}
for i = 1, 64 do B64_VALUE[sub(B64, i, i)] = i - 1 end
B64_VALUE["="] = 0

local function b64_digit(v)
  return sub(B64, v + 1, v + 1)
end

local function b64_group(group)
  local a, b, c = byte(group, 1, 3)
  local v = a * 65536 + b * 256 + c
  return b64_digit(floor(v / 262144)) .. b64_digit(floor(v / 4096) % 64)
    .. b64_digit(floor(v / 64) % 64) .. b64_digit(v % 64)
end

local function b64_tail(rest)
  if #rest == 1 then
    local v = byte(rest) * 16
    return b64_digit(floor(v / 64)) .. b64_digit(v % 64) .. "=="
  elseif #rest == 2 then
    local a, b = byte(rest, 1, 2)
    local v = (a * 256 + b) * 4
    return b64_digit(floor(v / 4096)) .. b64_digit(floor(v / 64) % 64) .. b64_digit(v % 64)
      .. "="
  end
  return ""
end

local function nil_if_empty(s)
  if s == "" then return nil end
  return s
end

--- A, B = b64(C [, D])
function M.b64(c, d)
  if c == nil then return nil, nil end
  local s = c .. (d or "")
  local whole = #s - #s % 3
  local encoded = gsub(sub(s, 1, whole), "...", b64_group)
  if d == nil then return nil_if_empty(encoded .. b64_tail(sub(s, whole + 1))), nil end
  return encoded, sub(s, whole + 1)
end

local function unb64_group(group)
  local a, b, c, d = B64_VALUE[sub(group, 1, 1)], B64_VALUE[sub(group, 2, 2)],
    B64_VALUE[sub(group, 3, 3)], B64_VALUE[sub(group, 4, 4)]
  local v = ((a * 64 + b) * 64 + c) * 64 + d
  local bytes = char(floor(v / 65536), floor(v / 256) % 256, v % 256)
  if sub(group, 3, 3) == "=" then return sub(bytes, 1, 1) end
  if sub(group, 4, 4) == "=" then return sub(bytes, 1, 2) end
  return bytes
end

--- A, B = unb64(C [, D]); characters outside the alphabet are skipped.
function M.unb64(c, d)
  if c == nil then return nil, nil end
  local s = gsub(c .. (d or ""), "[^%w%+/=]", "")
  local whole = #s - #s % 4
  local decoded = gsub(sub(s, 1, whole), "....", unb64_group)
  if d == nil then return nil_if_empty(decoded), nil end
  return decoded, sub(s, whole + 1)
end

-- Quoted-printable classes: plain, quoted, plain unless last on a line, CR.
local function qp_class(b)
  if b == 13 then return "cr" end
  if b == 9 or b == 32 then return "if_last" end
  if (b >= 33 and b <= 60) or (b >= 62 and b <= 126) then return "plain" end
  return "quoted"
end

local function qp_quote(b)
  return format("=%02X", b)
end

-- Encodes what can be decided from `atom` (up to 3 pending bytes); returns what is left.
local function qp_encode(atom, out, marker)
  while #atom > 0 do
    local first = atom[1]
    local class = qp_class(first)
    if class == "cr" then
      if #atom < 2 then return atom end
      if atom[2] == 10 then
        out[#out + 1] = marker
        return {}
      end
      out[#out + 1] = qp_quote(first)
    elseif class == "if_last" then
      if #atom < 3 then return atom end
      if atom[2] == 13 and atom[3] == 10 then
        out[#out + 1] = qp_quote(first)
        out[#out + 1] = marker
        return {}
      end
      out[#out + 1] = char(first)
    elseif class == "quoted" then
      out[#out + 1] = qp_quote(first)
    else
      out[#out + 1] = char(first)
    end
    atom = { atom[2], atom[3] }
  end
  return atom
end

local function qp_feed(s, atom, out, marker)
  for i = 1, #s do
    atom[#atom + 1] = byte(s, i)
    atom = qp_encode(atom, out, marker)
  end
  return atom
end

--- A, B = qp(C [, D [, marker]]): marker replaces CRLF (default CRLF).
function M.qp(c, d, marker)
  if c == nil then return nil, nil end
  marker = marker or CRLF
  local out = {}
  local atom = qp_feed(c, {}, out, marker)
  if d == nil then
    for i = 1, #atom do
      if qp_class(atom[i]) == "plain" then out[#out + 1] = char(atom[i])
      else out[#out + 1] = qp_quote(atom[i]) end
    end
    if #atom > 0 then out[#out + 1] = EQCRLF end
    return nil_if_empty(concat(out)), nil
  end
  atom = qp_feed(d, atom, out, marker)
  local rest = {}
  for i = 1, #atom do rest[i] = char(atom[i]) end
  return concat(out), concat(rest)
end

local function unqp_feed(s, atom, out)
  for i = 1, #s do
    atom = atom .. sub(s, i, i)
    local first = sub(atom, 1, 1)
    if first == "=" then
      if #atom == 3 then
        if sub(atom, 2, 3) ~= CRLF then
          local value = find(atom, "^=%x%x$") and tonumber(sub(atom, 2, 3), 16)
          out[#out + 1] = value and char(value) or atom
        end
        atom = ""
      end
    elseif first == "\r" then
      if #atom == 2 then
        if atom == CRLF then out[#out + 1] = CRLF end
        atom = ""
      end
    else
      local b = byte(first)
      if b == 9 or (b > 31 and b < 127) then out[#out + 1] = first end
      atom = ""
    end
  end
  return atom
end

--- A, B = unqp(C [, D])
function M.unqp(c, d)
  if c == nil then return nil, nil end
  local out = {}
  local atom = unqp_feed(c, "", out)
  if d == nil then return nil_if_empty(concat(out)), nil end
  atom = unqp_feed(d, atom, out)
  return concat(out), atom
end

local function wrap(left, input, length, soft, break_at)
  if input == nil then
    -- End of data: end the last line unless it is empty.
    if left < length then return soft, length * 1.0 end
    return nil, length * 1.0
  end
  local out = {}
  for i = 1, #input do
    local c = sub(input, i, i)
    if c == "\n" then
      out[#out + 1] = CRLF
      left = length
    elseif c ~= "\r" then
      if left <= break_at(c) then
        left = length
        out[#out + 1] = soft
      end
      out[#out + 1] = c
      left = left - 1
    end
  end
  return concat(out), left * 1.0
end

local function text_break() return 0 end
local function qp_break(c) return c == "=" and 3 or 1 end

--- A, n = wrp(left, B [, length]): B broken into lines of at most `length`.
function M.wrp(left, input, length)
  left = tonumber(left) or error("bad argument #1 to 'wrp' (number expected)", 2)
  length = tonumber(length) or 76
  return wrap(left, input, length, CRLF, text_break)
end

--- A, n = qpwrp(left, B [, length]): as wrp, never splitting an =XX.
function M.qpwrp(left, input, length)
  left = tonumber(left) or error("bad argument #1 to 'qpwrp' (number expected)", 2)
  length = tonumber(length) or 76
  return wrap(left, input, length, EQCRLF, qp_break)
end

--- A, ctx = eol(ctx, B [, marker]): CR, LF, CRLF and LFCR become `marker`.
function M.eol(ctx, input, marker)
  ctx = tonumber(ctx) or error("bad argument #1 to 'eol' (number expected)", 2)
  if input == nil then return nil, 0.0 end
  marker = marker or CRLF
  local out = {}
  for i = 1, #input do
    local b = byte(input, i)
    if b == 13 or b == 10 then
      if ctx == 13 or ctx == 10 then
        if b == ctx then out[#out + 1] = marker end
        ctx = 0
      else
        out[#out + 1] = marker
        ctx = b
      end
    else
      out[#out + 1] = char(b)
      ctx = 0
    end
  end
  return concat(out), ctx * 1.0
end

--- A, state = dot(state, B): SMTP dot-stuffing.
function M.dot(state, input)
  state = tonumber(state) or error("bad argument #1 to 'dot' (number expected)", 2)
  if input == nil then return nil, 2.0 end
  local out = {}
  for i = 1, #input do
    local c = sub(input, i, i)
    out[#out + 1] = c
    if c == "\r" then
      state = 1
    elseif c == "\n" then
      state = state == 1 and 2 or 0
    else
      if c == "." and state == 2 then out[#out + 1] = "." end
      state = 0
    end
  end
  return concat(out), state * 1.0
end

-- The filter factories of LuaSocket's mime.lua.
local function choose(table_)
  return function(name, opt1, opt2)
    if type(name) ~= "string" then name, opt1, opt2 = "default", name, opt1 end
    local f = table_[name or "nil"]
    if not f then error("unknown key (" .. tostring(name) .. ")", 3) end
    return f(opt1, opt2)
  end
end

local cycle = ltn12.filter.cycle

M.encodet = {
  base64 = function() return cycle(M.b64, "") end,
  ["quoted-printable"] = function(mode)
    return cycle(M.qp, "", mode == "binary" and "=0D=0A" or CRLF)
  end,
}
M.decodet = {
  base64 = function() return cycle(M.unb64, "") end,
  ["quoted-printable"] = function() return cycle(M.unqp, "") end,
}
M.wrapt = {
  text = function(length)
    length = length or 76
    return cycle(M.wrp, length, length)
  end,
  ["quoted-printable"] = function() return cycle(M.qpwrp, 76, 76) end,
}
M.wrapt.base64 = M.wrapt.text
M.wrapt.default = M.wrapt.text

M.encode = choose(M.encodet)
M.decode = choose(M.decodet)
M.wrap = choose(M.wrapt)

function M.normalize(marker)
  return cycle(M.eol, 0, marker)
end

function M.stuff()
  return cycle(M.dot, 2)
end

return M
