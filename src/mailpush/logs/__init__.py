"""Where log lines go and what they look like: Dovecot's log settings and line shapes.

An admin's tools (fail2ban, logwatch, grep scripts) were written for Dovecot's
log, so mailpush writes Dovecot's lines: `settings` holds `log_path`,
`info_log_path`, `debug_log_path`, `syslog_facility`, `log_timestamp` and
`deliver_log_format`; `session` knows which connection a line belongs to
(`imap-login`, `imap(alice)<pid><session>`); `line_format` writes a record
the way Dovecot writes it to a file or to syslog; `syslog` sends to
/dev/log; `delivery_line` is the one line per delivery; `text` masks
passwords and escapes control characters. The process-wide setup (the
filter that applies `text` to every record, handlers per level) is
`logging_config`.
"""
