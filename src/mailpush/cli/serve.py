"""`mailpush serve`: run every configured service until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging

from .. import __version__
from ..errors import MailpushError
from ..logging_config import configure_logging
from ..server import serve
from .config_file import Commands, add_config_option, load_config

log = logging.getLogger("mailpush")


def register(commands: Commands) -> None:
    help_text = "start every configured service and run until stopped"
    sub = commands.add_parser("serve", help=help_text, description=help_text)
    add_config_option(
        sub, "configuration file (default: built-in defaults, data in ./mailpush-data)"
    )
    sub.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    configure_logging()
    settings = load_config(args)
    configure_logging(settings.log_path, settings.mail_debug)
    source = settings.source_path or "built-in defaults"
    log.info("mailpush %s starting (configuration: %s)", __version__, source)
    try:
        asyncio.run(serve(settings))
    except MailpushError as exc:
        log.error("%s", exc)
        return 1
    return 0
