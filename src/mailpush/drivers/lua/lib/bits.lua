-- Bitwise and/or/and-not on flag values for every Lua version: operators
-- on 5.3+, `bit32` on 5.2, `bit` on LuaJIT, arithmetic on plain 5.1.

local events = ...
local mask = events.mask

local M = {}

local compile = loadstring or load
local operators = compile([[
  return function(a, b) return a & b end,
    function(a, b) return a | b end,
    function(a, b) return a & ~b end
]], "=mailpush/bits.lua(operators)")

local band, bor, band_not
if operators ~= nil then
  band, bor, band_not = operators()
else
  local lib = rawget(_G, "bit32") or rawget(_G, "bit")
  if lib ~= nil then
    band, bor = lib.band, lib.bor
    band_not = function(a, b) return lib.band(a, lib.bnot(b)) end
  else
    local function each_bit(a, b, keep)
      local result, bit = 0, 1
      while a > 0 or b > 0 do
        local x, y = a % 2, b % 2
        if keep(x == 1, y == 1) then result = result + bit end
        a, b, bit = (a - x) / 2, (b - y) / 2, bit * 2
      end
      return result
    end
    band = function(a, b) return each_bit(a, b, function(x, y) return x and y end) end
    bor = function(a, b) return each_bit(a, b, function(x, y) return x or y end) end
    band_not = function(a, b) return each_bit(a, b, function(x, y) return x and not y end) end
  end
end

M.mask = mask

function M.band(a, b) return band(mask(a), mask(b)) end
function M.bor(a, b) return bor(mask(a), mask(b)) end
function M.band_not(a, b) return band_not(mask(a), mask(b)) end

return M
