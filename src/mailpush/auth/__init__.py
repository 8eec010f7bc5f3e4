"""Users and passwords: Dovecot passwd-files and password schemes.

The front ends resolve a login or recipient with `resolve_user`, check a password with
`verify_password_async` (or both at once, taking the same time for unknown users, with
`PasswdFileAuthenticator`), slow password guessing down with `AuthPenalty`, and read
per-user settings from `UserRecord.userdb_fields`; the `mailpush user` commands edit
the file with `add_user`, `delete_user`, `set_password` and `list_users`.
"""

from mailpush.auth.login_check import LoginCheck, PasswdFileAuthenticator
from mailpush.auth.passwd_file import (
    PasswdFile,
    UserRecord,
    add_user,
    delete_user,
    list_users,
    set_password,
)
from mailpush.auth.password_schemes import (
    dummy_hash_like,
    hash_cost,
    hash_password,
    stored_scheme,
    supported_schemes,
    verify_password,
    verify_password_async,
)
from mailpush.auth.penalty import AuthPenalty
from mailpush.auth.username_format import format_username, resolve_user

__all__ = [
    "AuthPenalty",
    "LoginCheck",
    "PasswdFile",
    "PasswdFileAuthenticator",
    "UserRecord",
    "add_user",
    "delete_user",
    "dummy_hash_like",
    "format_username",
    "hash_cost",
    "hash_password",
    "list_users",
    "resolve_user",
    "set_password",
    "stored_scheme",
    "supported_schemes",
    "verify_password",
    "verify_password_async",
]
