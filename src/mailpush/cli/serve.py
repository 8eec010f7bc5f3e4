"""`mailpush serve`: run every configured service until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from .. import __version__
from ..config import Settings
from ..errors import ConfigError, MailpushError
from ..logging_config import configure_logging, mask_secrets
from ..server import serve
from .config_file import Commands, add_config_option, load_config
from .data_dir import prepare_data_dir, store_errors_explained
from .exit_status import EX_CONFIG
from .systemd_notify import notify

log = logging.getLogger(__name__)


def register(commands: Commands) -> None:
    help_text = "start every configured service and run until stopped"
    sub = commands.add_parser("serve", help=help_text, description=help_text)
    add_config_option(
        sub, "configuration file (default: built-in defaults, data in ./mailpush-data)"
    )
    sub.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    """Exit 78 (EX_CONFIG) for a configuration `mailpush config check` also refuses, 1 else."""
    configure_logging()
    try:
        settings = load_config(args)
        configure_logging(settings.log, settings.mail_debug)
        source = settings.source_path or "built-in defaults"
        log.info("mailpush %s starting (configuration: %s)", __version__, source)
        prepare_data_dir(settings)
        with store_errors_explained(settings):
            asyncio.run(_serve_until_stopped(settings))
    except ConfigError as exc:
        log.error("configuration error: %s", mask_secrets(str(exc)))
        return EX_CONFIG
    except MailpushError as exc:
        log.error("%s", mask_secrets(str(exc)))
        return 1
    return 0


async def _serve_until_stopped(settings: Settings) -> None:
    """`serve`, telling systemd (`Type=notify`) once every listener accepts."""
    ready = asyncio.Event()
    server = asyncio.create_task(serve(settings, ready))
    became_ready = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({server, became_ready}, return_when=asyncio.FIRST_COMPLETED)
    if became_ready in done:
        notify(f"READY=1\nSTATUS=mailpush {__version__} serving\nMAINPID={os.getpid()}")
    else:
        became_ready.cancel()
    await server
