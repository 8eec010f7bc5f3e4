-- dovecot.storage (its constants come from Python) and the mail_user / mailbox objects.
--
-- Mailbox and metadata operations yield to Python (the store runs its
-- queries on its own threads), like HTTP requests do.

local host, calls, bits, constants, check = ...

local M = {}

local type, tostring, setmetatable, error, select =
  type, tostring, setmetatable, error, select
local unpack = table.unpack or unpack
local bor = bits.bor

-- Defined once, in api/storage_constants.py, and handed over as `constants`.
M.constants = constants

local function pack(...) return { n = select("#", ...), ... } end

-- Performs I/O and returns its results packed, or raises `prefix .. message`
-- at the caller of the method that called it (never call it as a tail call).
local PLAIN = { string = true, number = true, boolean = true, ["nil"] = true }

local function io_or_raise(prefix, kind, ...)
  -- Python turns these into text outside the script's call, where no limit runs
  -- (a mailbox's vname replaced by a table with a __tostring would run there).
  for i = 1, select("#", ...) do
    local value = select(i, ...)
    if not PLAIN[type(value)] then
      error(prefix .. "a string expected, got " .. type(value), 3)
    end
  end
  local answer = pack(calls.io(kind, ...))
  if not answer[1] then error(prefix .. tostring(answer[2]), 3) end
  return answer
end

local function results(answer) return unpack(answer, 2, answer.n) end

local function strings(name, ...)
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to '" .. name .. "' (string expected, got no value)", 3) end
  local out = {}
  for i = 1, n do
    local value = select(i, ...)
    if type(value) ~= "string" then
      error("bad argument #" .. i .. " to '" .. name .. "' (string expected, got "
        .. type(value) .. ")", 3)
    end
    out[i] = value
  end
  return out, n
end

-- mail_user -------------------------------------------------------------------

local User = {}
User.__index = User
User.__tostring = function(self) return self.username end
User.__eq = function(a, b) return a.username == b.username end
User.__lt = function(a, b) return a.username < b.username end
User.__le = function(a, b) return a.username <= b.username end
M.User = User

local Mailbox = {}
Mailbox.__index = Mailbox
M.Mailbox = Mailbox

function M.new_user(username, home, uid, gid, service, session_id, session_create_time)
  return setmetatable({
    username = username, home = home, uid = uid, gid = gid, service = service,
    session_id = session_id, session_create_time = session_create_time,
    nonexistent = false, anonymous = false, autocreated = false,
    mail_debug = host.debug_enabled(), fuzzy_search = false, dsyncing = false, admin = false,
    session_restored = false,
  }, User)
end

function User:plugin_getenv(key)
  check(self, User, "plugin_getenv", "mail_user")
  return host.plugin_getenv(tostring(key))
end

function User:var_expand(template)
  check(self, User, "var_expand", "mail_user")
  template = tostring(template)
  local ok, value = host.var_expand(template, self.service, self.session_id)
  if not ok then error("var_expand(" .. template .. ") failed: " .. value, 2) end
  return value
end

function User:mailbox(name, flags)
  check(self, User, "mailbox", "mail_user")
  if type(name) ~= "string" then
    error("bad argument #1 to 'mailbox' (string expected, got " .. type(name) .. ")", 2)
  end
  return setmetatable({ user = self, name = name, vname = name, flags = flags or 0 }, Mailbox)
end

function User:metadata_get(...)
  check(self, User, "metadata_get", "mail_user")
  local keys, n = strings("metadata_get", ...)
  local answer = io_or_raise("", "metadata_get", false, unpack(keys, 1, n))
  return results(answer)
end

function User:metadata_set(key, value)
  check(self, User, "metadata_set", "mail_user")
  strings("metadata_set", key)
  if value ~= nil then value = tostring(value) end
  io_or_raise("Cannot set attribute: ", "metadata_set", false, key, value)
end

function User:metadata_unset(key)
  check(self, User, "metadata_unset", "mail_user")
  strings("metadata_unset", key)
  io_or_raise("Cannot unset attribute: ", "metadata_set", false, key, nil)
end

function User:metadata_list(...)
  check(self, User, "metadata_list", "mail_user")
  local prefixes, n = strings("metadata_list", ...)
  local answer = io_or_raise("", "metadata_list", false, unpack(prefixes, 1, n))
  return results(answer)
end

-- mailbox ---------------------------------------------------------------------------

Mailbox.__tostring = function(self) return self.vname end
Mailbox.__eq = function(a, b) return a.user == b.user and a.vname == b.vname end
Mailbox.__lt = function(a, b) return a.vname < b.vname end
Mailbox.__le = function(a, b) return a.vname <= b.vname end

function Mailbox:open()
  check(self, Mailbox, "open", "mailbox")
  io_or_raise("mailbox_open(" .. self.vname .. ") failed: ", "mailbox_open", self.vname)
end

function Mailbox:close()
  check(self, Mailbox, "close", "mailbox")
end

function Mailbox:free()
  check(self, Mailbox, "free", "mailbox")
end

function Mailbox:sync(_flags)
  check(self, Mailbox, "sync", "mailbox")
  io_or_raise("mailbox_sync(" .. self.vname .. ") failed: ", "mailbox_open", self.vname)
end

function Mailbox:status(...)
  check(self, Mailbox, "status", "mailbox")
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to 'status' (number expected, got no value)", 2) end
  local items = 0
  for i = 1, n do
    local item = select(i, ...)
    if type(item) ~= "number" then
      error("bad argument #" .. i .. " to 'status' (number expected, got " .. type(item) .. ")", 2)
    end
    items = bor(items, item)
  end
  local answer = io_or_raise("mailbox_get_status(" .. self.vname .. ", " .. items .. ") failed: ",
    "mailbox_status", self.vname, items)
  return results(answer)
end

function Mailbox:metadata_get(...)
  check(self, Mailbox, "metadata_get", "mailbox")
  local keys, n = strings("metadata_get", ...)
  local answer = io_or_raise("", "metadata_get", self.vname, unpack(keys, 1, n))
  return results(answer)
end

function Mailbox:metadata_set(key, value)
  check(self, Mailbox, "metadata_set", "mailbox")
  strings("metadata_set", key)
  if value ~= nil then value = tostring(value) end
  io_or_raise("Cannot set attribute: ", "metadata_set", self.vname, key, value)
end

function Mailbox:metadata_unset(key)
  check(self, Mailbox, "metadata_unset", "mailbox")
  strings("metadata_unset", key)
  io_or_raise("Cannot unset attribute: ", "metadata_set", self.vname, key, nil)
end

function Mailbox:metadata_list(...)
  check(self, Mailbox, "metadata_list", "mailbox")
  local prefixes, n = strings("metadata_list", ...)
  local answer = io_or_raise("", "metadata_list", self.vname, unpack(prefixes, 1, n))
  return results(answer)
end

return M
