"""`mailpush lua check|run`: try a Lua push script without a mail server (see lua_tryout.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MailpushError
from ..logging_config import configure_logging
from ..server import UserDirectory, open_store
from .config_file import Commands, add_config_option, load_config

if TYPE_CHECKING:
    from .lua_tryout import RunReport


def register(commands: Commands) -> None:
    lua = commands.add_parser("lua", help="try a Lua push script without a mail server")
    lua_commands = lua.add_subparsers(title="lua commands", metavar="ACTION")
    lua_check = lua_commands.add_parser(
        "check", help="compile a script and list the notify functions it defines"
    )
    lua_check.add_argument("script", type=Path, metavar="SCRIPT")
    lua_check.add_argument("--lua-version", help="5.1 … 5.5 or luajit (default 5.4)")
    lua_check.set_defaults(run=_lua_check)
    lua_run = lua_commands.add_parser(
        "run", help="run one made-up event through a script (its HTTP requests are sent)"
    )
    lua_run.add_argument("script", type=Path, metavar="SCRIPT")
    add_config_option(lua_run, "use this configuration's plugin settings and mail store")
    lua_run.add_argument("--lua-version", help="5.1 … 5.5 or luajit (default 5.4)")
    lua_run.add_argument("--event", default="message_new",
                         help="message_new, message_append, flags_set, mailbox_create, …")
    lua_run.add_argument("--field", action="append", default=[], metavar="NAME=VALUE",
                         help="an event field, e.g. subject=Hello (repeatable)")
    lua_run.add_argument("--user", default="alice", help="the mail user (default alice)")
    lua_run.add_argument("--plugin", action="append", default=[], metavar="KEY=VALUE",
                         help="a plugin setting, e.g. push_lua_url=http://… (repeatable)")
    lua_run.add_argument("--debug", action="store_true", help="log debug lines too")
    lua_run.set_defaults(run=_lua_run)


# The Lua runtime is imported only when a lua command runs: the other commands
# start without loading it.


def _lua_check(args: argparse.Namespace) -> int:
    from .lua_tryout import MemoryStoreView, TryoutServices, check_script

    configure_logging()

    async def check() -> int:
        services = TryoutServices(MemoryStoreView())
        try:
            report = await check_script(args.script, args.lua_version, services)
        finally:
            await services.close()
        print(f"{report.path}: syntax OK (Lua {report.version})")
        for name in report.defined:
            print(f"  defines {name}")
        for warning in report.warnings:
            print(f"warning: {warning}")
        if report.load_error:
            print(f"error: {report.load_error}")
            return 1
        return 0

    return asyncio.run(check())


def _lua_run(args: argparse.Namespace) -> int:
    from ..dispatch import FrameworkServices
    from ..drivers import driver_configs
    from .lua_tryout import MemoryStoreView, TryoutServices, make_event, run_script

    configure_logging(debug=args.debug)
    fields = dict(_key_values(args.field, "--field"))
    plugin = dict(_key_values(args.plugin, "--plugin"))
    event = make_event(args.event, fields)

    async def run() -> RunReport:
        if args.config is None:
            services = TryoutServices(MemoryStoreView(), plugin)
            try:
                return await run_script(args.script, args.lua_version, services, [event],
                                        args.user)
            finally:
                await services.close()
        settings = load_config(args)
        store = open_store(settings)
        # The script on the command line, not the configured one, runs.
        configured = {key: value for key, value in {**settings.plugin, **plugin}.items()
                      if key != "push_notification_lua_script_file"}
        real = FrameworkServices(store, configured, UserDirectory(settings).user_settings)
        try:
            return await run_script(args.script, args.lua_version, real, [event], args.user,
                                    configured=driver_configs(settings))
        finally:
            await real.close()
            await asyncio.to_thread(store.close)

    report = asyncio.run(run())
    if not report.ran:
        print("the script took no part in the transaction (see the log above)", file=sys.stderr)
        return 1
    if not report.ok:
        failed = [*report.failed, *(f"{call} (skipped)" for call in report.skipped)]
        print(f"failed: {'; '.join(failed)} (see the log above)", file=sys.stderr)
        return 1
    return 0


def _key_values(items: Sequence[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise MailpushError(f"{option} {item!r}: expected NAME=VALUE")
        pairs.append((key, value))
    return pairs
