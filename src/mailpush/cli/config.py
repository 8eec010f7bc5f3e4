"""`mailpush config check|dump`: what `serve` would do with the configuration, without serving.

`check` runs `check_startup`, the function `serve` runs before it opens
anything, so the two accept and refuse the same files with the same messages;
a refusal exits 78 (EX_CONFIG) through `main`. `dump` prints the effective
configuration as `doveconf` does (`-n`: only what differs from the defaults).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..config import load_settings, parse_file
from ..config.dump import dump_config
from ..config.syntax import ConfigSection
from ..dispatch.outbox_recorder import push_service_plan
from ..startup_checks import check_startup
from .config_file import Commands, add_config_option


def register(commands: Commands) -> None:
    config = commands.add_parser("config", help="check and show the configuration")
    config_commands = config.add_subparsers(title="config commands", metavar="ACTION")
    check = config_commands.add_parser(
        "check",
        help="run every check `serve` runs at start-up (exit 78 on a problem)",
        description="Run every check `serve` runs at start-up: settings, listeners, TLS"
        " certificate, push drivers and their options (Lua scripts compiled) and global"
        " Sieve scripts. Exit 0 when serve would start, 78 (EX_CONFIG) when it would not.",
    )
    add_config_option(check)
    check.set_defaults(run=_config_check)
    dump = config_commands.add_parser(
        "dump", help="print the effective configuration (like doveconf)",
        description="Print the effective configuration in Dovecot syntax, like doveconf.",
    )
    add_config_option(dump)
    dump.add_argument("-n", dest="changed_only", action="store_true",
                      help="only settings that differ from the defaults (like doveconf -n)")
    dump.add_argument("-P", dest="show_secrets", action="store_true",
                      help="show passwords and secrets instead of hiding them")
    dump.set_defaults(run=_config_dump)


def _config_check(args: argparse.Namespace) -> int:
    # Warnings go to stderr here, not to the log: showing them is this command's job.
    # The checks' own log lines (a Sieve compile error) would repeat the error raised.
    logging.getLogger("mailpush").addHandler(logging.NullHandler())
    loaded = load_settings(args.config)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    settings = loaded.settings
    plan = check_startup(settings)
    print(f"configuration OK: {settings.source_path or 'built-in defaults'}")
    print(f"data directory: {settings.data_dir}")
    print(f"users: {settings.auth.passdb.path}")
    for listener in settings.listeners:
        tls = " (TLS)" if listener.ssl else ""
        print(f"{listener.service}: {listener.address}:{listener.port}{tls}")
    if settings.metrics_listen is not None:
        print(f"metrics: {settings.metrics_listen[0]}:{settings.metrics_listen[1]}")
    print(f"push: {push_service_plan(settings, plan.drivers).describe()}")
    return 0


def _config_dump(args: argparse.Namespace) -> int:
    # Loading first refuses a file `serve` could not read, with the same message.
    load_settings(args.config)
    tree = (
        parse_file(args.config)
        if args.config
        else ConfigSection("", None, (), (), "<defaults>", 0)
    )
    text = dump_config(tree, changed_only=args.changed_only, show_secrets=args.show_secrets)
    sys.stdout.write(f"# mailpush configuration: {args.config or 'built-in defaults'}\n{text}")
    return 0
