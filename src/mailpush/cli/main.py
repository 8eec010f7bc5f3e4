"""`mailpush`'s entry point: the parser built from the command groups, errors to exit statuses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import ConfigError, MailpushError
from ..logging_config import mask_secrets
from . import config, deliver, events, lua, metadata, queue, serve, user
from .config_file import Commands
from .exit_status import EX_CONFIG, EX_USAGE

#: The command groups, in the order `mailpush --help` lists them.
COMMAND_GROUPS: tuple[Callable[[Commands], None], ...] = (
    serve.register,
    deliver.register,
    user.register,
    queue.register,
    metadata.register,
    lua.register,
    events.register,
    config.register,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EX_USAGE
    try:
        result: int = args.run(args)
        return result
    except ConfigError as exc:
        print(f"mailpush: configuration error: {mask_secrets(str(exc))}", file=sys.stderr)
        return EX_CONFIG
    except MailpushError as exc:
        print(f"mailpush: {mask_secrets(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailpush",
        description="LMTP + IMAP mail server with Dovecot-compatible push notifications.",
    )
    parser.add_argument("--version", action="version", version=f"mailpush {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in COMMAND_GROUPS:
        register(commands)
    return parser
