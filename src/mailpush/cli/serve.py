"""`mailpush serve`: run every configured service until stopped.

With `mailpush_workers` > 1 this process is the supervisor of that many
workers (workers.py), each started as `mailpush serve --worker INDEX` with
the same configuration file; `--worker` is for the supervisor only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .. import __version__
from ..config import Settings
from ..errors import ConfigError, MailpushError
from ..event_loop import run
from ..listener import sharing_ports
from ..logging_config import configure_logging, mask_secrets
from ..logs.worker_tag import name_worker_in_log
from ..server import serve
from ..worker_role import WorkerRole, worker_control_path
from ..workers import Supervisor, stop_with_supervisor
from .config_file import Commands, add_config_option, load_config
from .data_dir import prepare_data_dir, store_errors_explained
from .exit_status import EX_CONFIG
from .systemd_notify import notify

log = logging.getLogger(__name__)

#: What `serve` runs until stopped; it sets the event once every listener accepts.
Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def register(commands: Commands) -> None:
    help_text = "start every configured service and run until stopped"
    sub = commands.add_parser("serve", help=help_text, description=help_text)
    add_config_option(
        sub, "configuration file (default: built-in defaults, data in ./mailpush-data)"
    )
    # Started by the supervisor of `mailpush_workers` > 1 only: not for admins.
    sub.add_argument("--worker", type=int, metavar="INDEX", help=argparse.SUPPRESS)
    sub.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    """Exit 78 (EX_CONFIG) for a configuration `mailpush config check` also refuses, 1 else."""
    if args.worker is not None:
        # Before the first line: the configuration's warnings are a worker's lines too.
        name_worker_in_log(args.worker)
    configure_logging()
    try:
        settings = load_config(args)
        configure_logging(settings.log, settings.mail_debug)
        source = settings.source_path or "built-in defaults"
        if args.worker is None:
            log.info("mailpush %s starting (configuration: %s)", __version__, source)
        prepare_data_dir(settings)
        with store_errors_explained(settings):
            run(_serve_until_stopped(_service(settings, args.worker)), settings.event_loop)
    except ConfigError as exc:
        log.error("configuration error: %s", mask_secrets(str(exc)))
        return EX_CONFIG
    except MailpushError as exc:
        log.error("%s", mask_secrets(str(exc)))
        return 1
    return 0


def _service(settings: Settings, worker: int | None) -> Service:
    """One server, a supervisor of `mailpush_workers` workers, or one of those workers."""
    if worker is not None:
        role = WorkerRole(worker, worker_control_path(settings.data_dir, worker))

        async def run_worker(ready: asyncio.Event) -> None:
            stop_with_supervisor()
            with sharing_ports():
                await serve(settings, ready, role)

        return run_worker
    if settings.workers > 1:
        return Supervisor(settings, lambda index: _worker_command(settings, index)).run
    return lambda ready: serve(settings, ready)


def _worker_command(settings: Settings, index: int) -> list[str]:
    config = [] if settings.source_path is None else ["--config", str(settings.source_path)]
    return [sys.executable, "-m", "mailpush.cli", "serve", *config, "--worker", str(index)]


async def _serve_until_stopped(service: Service) -> None:
    """Run `service`, telling systemd (`Type=notify`) once every listener accepts."""
    ready = asyncio.Event()
    server = asyncio.create_task(service(ready))
    became_ready = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({server, became_ready}, return_when=asyncio.FIRST_COMPLETED)
    if became_ready in done:
        notify(f"READY=1\nSTATUS=mailpush {__version__} serving\nMAINPID={os.getpid()}")
    else:
        became_ready.cancel()
    await server
