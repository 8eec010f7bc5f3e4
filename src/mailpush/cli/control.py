"""`mailpush reload|who|kick`: commands the running server answers, over its control socket.

They read the configuration only to find the data directory, where the
server's socket is (`control.sock`); the server does the work and says how it
went. `reload` asks the server to read its configuration file again: the file
it started with, so `-c` must name the same data directory, not a new file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from ..control_socket import ask, control_socket_path
from ..errors import ConfigError, MailpushError
from .config_file import Commands, add_config_option, load_config
from .exit_status import EX_CONFIG

__all__ = ["register"]


def register(commands: Commands) -> None:
    help_text = "make the running server read its configuration again (as SIGHUP does)"
    reload = commands.add_parser("reload", help=help_text, description=help_text)
    add_config_option(reload, "configuration file of the running server (for its data dir)")
    reload.set_defaults(run=_reload)

    help_text = "list the open IMAP and LMTP connections (as doveadm who -1)"
    who = commands.add_parser("who", help=help_text, description=help_text)
    add_config_option(who, "configuration file of the running server (for its data dir)")
    who.add_argument("user", nargs="?", metavar="USER", help="only this user's connections")
    who.set_defaults(run=_who)

    help_text = "disconnect a user's IMAP connections (* BYE), as doveadm kick"
    kick = commands.add_parser("kick", help=help_text, description=help_text)
    add_config_option(kick, "configuration file of the running server (for its data dir)")
    kick.add_argument("user", metavar="USER", help="the user to disconnect")
    kick.set_defaults(run=_kick)


def _ask(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any]:
    settings = load_config(args)
    return asyncio.run(ask(control_socket_path(settings.data_dir), request))


def _reload(args: argparse.Namespace) -> int:
    try:
        answer = _ask(args, {"command": "reload"})
    except ConfigError as exc:
        # The file the server would read does not check: nothing was sent, nothing changes.
        raise ConfigError(
            f"{exc} (not reloaded: the running server keeps its configuration)"
        ) from exc
    if not answer.get("ok"):
        print(
            f"mailpush: reload refused, the running configuration stays: {answer.get('message')}",
            file=sys.stderr,
        )
        return EX_CONFIG
    print(answer.get("message", "reloaded"))
    for setting in answer.get("restart_needed", []):
        print(f"  {setting} changed: needs a restart to apply (the running value stays)")
    return 0


def _who(args: argparse.Namespace) -> int:
    answer = _ask(args, {"command": "who"})
    if not answer.get("ok"):
        raise MailpushError(f"who: {answer.get('message')}")
    sessions = [s for s in answer["sessions"] if args.user is None or s["user"] == args.user]
    print(f"{'username':<24} {'service':<7} {'remote ip':<39} since")
    for session in sessions:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(session["since"]))
        user = session["user"] or "-"
        print(f"{user:<24} {session['service']:<7} {session['remote_ip']:<39} {since}")
    return 0


def _kick(args: argparse.Namespace) -> int:
    answer = _ask(args, {"command": "kick", "user": args.user})
    if not answer.get("ok"):
        raise MailpushError(f"kick: {answer.get('message')}")
    kicked = int(answer["kicked"])
    print(f"kicked {args.user}: {kicked} IMAP connection(s)")
    return 0 if kicked else 1
