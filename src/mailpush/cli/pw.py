"""`mailpush pw`: hash a password in any supported scheme, or test one, as `doveadm pw`.

The hash is printed with its `{SCHEME}` prefix, ready for a passwd-file line or
a userdb field; `-t HASH` checks a password against a stored hash.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ..auth import hash_password, supported_schemes, verify_password
from ..errors import MailpushError
from .config_file import Commands


def register(commands: Commands) -> None:
    help_text = "hash a password (or test one against a hash), like doveadm pw"
    pw = commands.add_parser("pw", help=help_text, description=help_text)
    pw.add_argument("-s", dest="scheme", default="ARGON2ID", metavar="SCHEME",
                    help=f"password scheme (default ARGON2ID; {', '.join(supported_schemes())})")
    pw.add_argument("-p", dest="password", metavar="PASSWORD",
                    help="the password (visible to other users in `ps`: prefer the prompt"
                    " or standard input)")
    pw.add_argument("-t", dest="test", metavar="HASH",
                    help="verify the password against HASH instead of hashing it")
    pw.add_argument("-l", dest="list_schemes", action="store_true",
                    help="list the supported schemes")
    pw.set_defaults(run=_pw)


def _pw(args: argparse.Namespace) -> int:
    if args.list_schemes:
        print(" ".join(supported_schemes()))
        return 0
    password = args.password if args.password is not None else _read_password()
    if args.test is not None:
        # A hash without {SCHEME} is read as the scheme given with -s, as doveadm does.
        if not verify_password(args.test, password, args.scheme):
            print("mailpush pw: password does not match the hash", file=sys.stderr)
            return 1
        print(f"{args.test} (verified)")
        return 0
    print(hash_password(password, args.scheme))
    return 0


def _read_password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Enter new password: ")
        if getpass.getpass("Retype new password: ") != password:
            raise MailpushError("pw: the passwords do not match")
    if not password:
        raise MailpushError("pw: refusing an empty password")
    return password
