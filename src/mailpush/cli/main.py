"""`mailpush`'s entry point: the parser built from the command groups, errors to exit statuses."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import ConfigError, MailpushError
from ..logging_config import mask_secrets
from . import (
    config,
    control,
    deliver,
    events,
    lua,
    mailbox,
    messages,
    metadata,
    pw,
    queue,
    serve,
    store,
    user,
)
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
    control.register,
    mailbox.register,
    messages.register,
    store.register,
    pw.register,
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
    except BrokenPipeError:
        # `mailpush events tail | head -1`: the reader is gone, which is not an error.
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
