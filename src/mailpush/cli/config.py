"""`mailpush config check`: parse the configuration and say what would run."""

from __future__ import annotations

import argparse
import sys

from ..config import load_settings
from ..dispatch.outbox_recorder import push_service_plan
from ..drivers import driver_configs
from .config_file import Commands, add_config_option


def register(commands: Commands) -> None:
    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(title="config commands", metavar="ACTION")
    check = config_commands.add_parser("check", help="parse the configuration and report problems")
    add_config_option(check)
    check.set_defaults(run=_config_check)


def _config_check(args: argparse.Namespace) -> int:
    # Warnings go to stderr here, not to the log: showing them is this command's job.
    loaded = load_settings(args.config)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    settings = loaded.settings
    print(f"configuration OK: {settings.source_path or 'built-in defaults'}")
    print(f"data directory: {settings.data_dir}")
    print(f"users: {settings.auth.passdb.path}")
    for listener in settings.listeners:
        print(f"{listener.service}: {listener.address}:{listener.port}")
    configured = {config.instance: config.driver for config in driver_configs(settings)}
    print(f"push: {push_service_plan(settings, configured).describe()}")
    return 0
