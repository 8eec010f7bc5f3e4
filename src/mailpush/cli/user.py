"""`mailpush user add|del|list|passwd`: edit the passwd-file the server reads."""

from __future__ import annotations

import argparse
import getpass
import re
import sys

from ..auth import (
    PasswdFile,
    add_user,
    delete_user,
    list_users,
    set_password,
    stored_scheme,
    supported_schemes,
)
from ..config import Settings
from ..errors import MailpushError, NoSuchUserError
from .config_file import Commands, add_command, load_config
from .data_dir import prepare_data_dir

_SCHEME_PREFIX = re.compile(r"^\{([A-Za-z0-9.\-_]+)\}")


def register(commands: Commands) -> None:
    user = commands.add_parser("user", help="manage the passwd-file users")
    user_commands = user.add_subparsers(title="user commands", metavar="ACTION")
    schemes = ", ".join(supported_schemes())

    add = add_command(user_commands, "add", "add a user")
    add.add_argument("name")
    add.add_argument("--scheme", default="ARGON2ID", help=f"password scheme ({schemes})")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of prompting")
    add.add_argument("--home", default="", help="home directory field")
    add.add_argument("--field", action="append", default=[], metavar="KEY=VALUE",
                     help="extra field, e.g. userdb_push_lua_url=https://... (repeatable)")
    add.set_defaults(run=_user_add)
    remove = add_command(user_commands, "del", "delete a user (their mail stays in the store)")
    remove.add_argument("name")
    remove.set_defaults(run=_user_del)
    listing = add_command(user_commands, "list", "list users")
    listing.set_defaults(run=_user_list)
    passwd = add_command(user_commands, "passwd", "change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--scheme", help=f"password scheme ({schemes};"
                        " default: the scheme the user's password has now)")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input instead of prompting")
    passwd.set_defaults(run=_user_passwd)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise MailpushError("the passwords do not match")
    if not password:
        raise MailpushError("refusing an empty password")
    return password


def _user_add(args: argparse.Namespace) -> int:
    settings = load_config(args)
    fields: dict[str, str] = {}
    for item in args.field:
        key, sep, value = item.partition("=")
        if not key:
            raise MailpushError(f"--field {item!r}: expected KEY=VALUE")
        fields[key] = value if sep else ""
    path = settings.auth.passdb.path
    _prepare_passwd_dir(settings)
    add_user(path, args.name, _read_password(args), args.scheme, home=args.home,
             extra_fields=fields)
    print(f"added {args.name} to {path}")
    return 0


def _user_del(args: argparse.Namespace) -> int:
    settings = load_config(args)
    delete_user(settings.auth.passdb.path, args.name)
    print(f"deleted {args.name} from {settings.auth.passdb.path}")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    settings = load_config(args)
    for record in list_users(settings.auth.passdb.path):
        print(record.username)
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    settings = load_config(args)
    path = settings.auth.passdb.path
    scheme = args.scheme or _current_scheme(settings, args.name)
    set_password(path, args.name, _read_password(args), scheme)
    print(f"changed the password of {args.name} ({scheme.upper()})")
    return 0


def _current_scheme(settings: Settings, name: str) -> str:
    """The scheme of `name`'s stored password, as written (`{SHA256.HEX}` stays hex).

    A password without a `{SCHEME}` prefix uses the passdb's `default_pass_scheme`
    (Dovecot's CRYPT when none is set), so changing it keeps the file readable.
    """
    record = PasswdFile(settings.auth.passdb.path).lookup(name)
    if record is None:
        raise NoSuchUserError(f"no user {name!r} in {settings.auth.passdb.path}")
    written = _SCHEME_PREFIX.match(record.password)
    if written is not None:
        return written.group(1)
    return stored_scheme(record.password, settings.auth.passdb.scheme or "CRYPT")


def _prepare_passwd_dir(settings: Settings) -> None:
    """The passwd-file's directory: the data directory is created, another must exist."""
    directory = settings.auth.passdb.path.parent
    if directory == settings.data_dir:
        prepare_data_dir(settings)
    elif not directory.is_dir():
        raise MailpushError(
            f"the directory of the passwd-file {settings.auth.passdb.path} does not exist;"
            " create it, or change passdb { args } to a file in an existing directory"
        )
