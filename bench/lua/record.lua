-- Recording push script for bench/compare.py: every handler Dovecot's Lua push
-- driver knows is defined, and each event appends one line to the file named
-- by the plugin setting `record_file`:
--
--   MessageNew alice INBOX 17
--
-- The file is opened per transaction (the handle lives in the context, so
-- interleaved transactions stay apart) and closed at its end, as a script
-- that writes an audit trail would. The benchmark counts the lines to know
-- when a server has run every handler for the mail it accepted.

-- Dovecot 2.3 disables the driver unless script_init returns a number.
function script_init()
  return 0
end

function script_deinit()
end

function dovecot_lua_notify_begin_txn(user)
  return {out = io.open(user:plugin_getenv("record_file"), "a"), user = user.username}
end

function dovecot_lua_notify_end_txn(ctx, success)
  ctx.out:close()
end

local function record(ctx, event)
  ctx.out:write(event.name, " ", ctx.user, " ", event.mailbox, " ",
                tostring(event.uid or "-"), "\n")
end

dovecot_lua_notify_event_mailbox_create = record
dovecot_lua_notify_event_mailbox_delete = record
dovecot_lua_notify_event_mailbox_rename = record
dovecot_lua_notify_event_mailbox_subscribe = record
dovecot_lua_notify_event_mailbox_unsubscribe = record
dovecot_lua_notify_event_message_new = record
dovecot_lua_notify_event_message_append = record
dovecot_lua_notify_event_message_read = record
dovecot_lua_notify_event_message_trash = record
dovecot_lua_notify_event_message_expunge = record
dovecot_lua_notify_event_flags_set = record
dovecot_lua_notify_event_flags_clear = record
