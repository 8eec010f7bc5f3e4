"""The exit statuses of `mailpush` commands.

sysexits.h values, as dovecot-lda uses them, so an MTA piping into
`mailpush deliver` knows whether to retry.
"""

EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78
