"""`mailpush user add|del|list|passwd`: edit the passwd-file the server reads."""

from __future__ import annotations

import argparse
import getpass
import sys

from ..auth import add_user, delete_user, list_users, set_password, supported_schemes
from ..errors import MailpushError
from .config_file import Commands, add_config_option, load_config


def register(commands: Commands) -> None:
    user = commands.add_parser("user", help="manage the passwd-file users")
    user_commands = user.add_subparsers(title="user commands", metavar="ACTION")
    schemes = ", ".join(supported_schemes())

    def user_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = user_commands.add_parser(name, help=help_text, description=help_text)
        add_config_option(sub)
        return sub

    add = user_command("add", "add a user")
    add.add_argument("name")
    add.add_argument("--scheme", default="ARGON2ID", help=f"password scheme ({schemes})")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of prompting")
    add.add_argument("--home", default="", help="home directory field")
    add.add_argument("--field", action="append", default=[], metavar="KEY=VALUE",
                     help="extra field, e.g. userdb_push_lua_url=https://... (repeatable)")
    add.set_defaults(run=_user_add)
    remove = user_command("del", "delete a user (their mail stays in the store)")
    remove.add_argument("name")
    remove.set_defaults(run=_user_del)
    listing = user_command("list", "list users")
    listing.set_defaults(run=_user_list)
    passwd = user_command("passwd", "change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--scheme", default="ARGON2ID", help=f"password scheme ({schemes})")
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
    set_password(settings.auth.passdb.path, args.name, _read_password(args), args.scheme)
    print(f"changed the password of {args.name}")
    return 0
