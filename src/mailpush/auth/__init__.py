"""Users and passwords: Dovecot passwd-files and password schemes.

The front ends resolve a login or recipient with `resolve_user`, check a password with
`verify_password_async`, and read per-user settings from `UserRecord.userdb_fields`;
the `mailpush user` commands edit the file with `add_user`, `delete_user`,
`set_password` and `list_users`.
"""

from mailpush.auth.passwd_file import (
    PasswdFile,
    UserRecord,
    add_user,
    delete_user,
    list_users,
    set_password,
)
from mailpush.auth.password_schemes import (
    hash_password,
    stored_scheme,
    supported_schemes,
    verify_password,
    verify_password_async,
)
from mailpush.auth.username_format import format_username, resolve_user

__all__ = [
    "PasswdFile",
    "UserRecord",
    "add_user",
    "delete_user",
    "format_username",
    "hash_password",
    "list_users",
    "resolve_user",
    "set_password",
    "stored_scheme",
    "supported_schemes",
    "verify_password",
    "verify_password_async",
]
