-- The check each API method makes of its receiver (`self`), shared by the
-- http and storage libraries: a script that writes `client.request(...)`
-- for `client:request(...)` gets Lua's own "bad argument #1" error, naming
-- the method and how to call it, at the script's line (level 3: the
-- method's caller, as long as methods call this directly, never as a tail
-- call).

local getmetatable, error = getmetatable, error

return function(self, class, name, what)
  if getmetatable(self) ~= class then
    error("bad argument #1 to '" .. name .. "' (" .. what .. " expected; call it as "
      .. what .. ":" .. name .. "(...))", 3)
  end
end
