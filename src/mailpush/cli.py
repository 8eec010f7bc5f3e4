"""The `mailpush` command: serve, deliver, manage users, check configuration.

Every subcommand reads the same configuration file (`--config`, or the
embedded defaults), so `mailpush user add` edits exactly the passwd-file the
server reads. Errors an admin can fix are printed as one line, without a
traceback, and give a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from . import __version__
from .auth import add_user, delete_user, list_users, set_password, supported_schemes
from .config import LoadedConfig, Settings, load_settings
from .delivery import DeliveryRequest
from .dispatch.outbox_recorder import push_service_plan
from .drivers import driver_configs
from .errors import ConfigError, MailpushError, StoreError
from .events import transaction_from_json, transaction_to_dict
from .lmtp import split_detail
from .logging_config import configure_logging, mask_secrets
from .server import UserDirectory, build_delivery_agent, build_push, open_store, serve
from .store import SqliteStore

log = logging.getLogger("mailpush")

# sysexits.h, as dovecot-lda uses them so an MTA knows whether to retry.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailpush",
        description="LMTP + IMAP mail server with Dovecot-compatible push notifications.",
    )
    parser.add_argument("--version", action="version", version=f"mailpush {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c", "--config", metavar="FILE",
            help="configuration file (default: built-in defaults, data in ./mailpush-data)",
        )
        return sub

    serve_cmd = command("serve", "start every configured service and run until stopped")
    serve_cmd.set_defaults(run=_serve)

    deliver = command(
        "deliver", "deliver a message read from standard input (like dovecot-lda)"
    )
    deliver.add_argument("-d", dest="user", required=True, metavar="USER",
                         help="recipient user or address")
    deliver.add_argument("-m", dest="mailbox", metavar="MAILBOX",
                         help="mailbox to save into (default INBOX; missing → INBOX)")
    deliver.set_defaults(run=_deliver)

    user = commands.add_parser("user", help="manage the passwd-file users")
    user_commands = user.add_subparsers(title="user commands", metavar="ACTION")
    schemes = ", ".join(supported_schemes())

    def user_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = user_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", metavar="FILE", help="configuration file")
        return sub

    add = user_command("add", "add a user")
    add.add_argument("name")
    add.add_argument("--scheme", default="ARGON2ID", help=f"password scheme ({schemes})")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of prompting")
    add.add_argument("--home", default="", help="home directory field")
    add.add_argument("--field", action="append", default=[], metavar="KEY=VALUE",
                     help="extra field, e.g. userdb_push_lua_url=https://... (repeatable)")
    add.set_defaults(run=_user_add)
    remove = user_command("del", "delete a user (their mail stays in the store)")
    remove.add_argument("name")
    remove.set_defaults(run=_user_del)
    listing = user_command("list", "list users")
    listing.set_defaults(run=_user_list)
    passwd = user_command("passwd", "change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--scheme", default="ARGON2ID", help=f"password scheme ({schemes})")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input instead of prompting")
    passwd.set_defaults(run=_user_passwd)

    queue = commands.add_parser("queue", help="inspect and replay the push outbox")
    queue_commands = queue.add_subparsers(title="queue commands", metavar="ACTION")

    def queue_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = queue_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", metavar="FILE", help="configuration file")
        return sub

    queue_command("status", "pending, in flight, retrying and dead transactions per driver"
                  ).set_defaults(run=_queue_status)
    dead = queue_command("dead", "list dead letters")
    dead.add_argument("--driver", help="only this driver instance")
    dead.set_defaults(run=_queue_dead)
    replay = queue_command("replay", "send dead letters again")
    replay.add_argument("ids", nargs="*", type=int, metavar="ID", help="outbox ids to replay")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument("--driver", help="only this driver instance")
    replay.set_defaults(run=_queue_replay)

    metadata = commands.add_parser(
        "metadata", help="read and write RFC 5464 METADATA (server or mailbox entries)"
    )
    metadata_commands = metadata.add_subparsers(title="metadata commands", metavar="ACTION")

    def metadata_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = metadata_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", metavar="FILE", help="configuration file")
        sub.add_argument("user", metavar="USER", help="user name or address")
        sub.add_argument("-m", "--mailbox", metavar="MAILBOX",
                         help="a mailbox's entries (default: the user's server entries)")
        return sub

    entry_help = "entry name, e.g. /private/vendor/vendor.dovecot/http-notify"
    meta_get = metadata_command("get", "print one entry's value")
    meta_get.add_argument("entry", metavar="ENTRY", help=entry_help)
    meta_get.set_defaults(run=_metadata_get)
    meta_set = metadata_command("set", "set one entry (creates no push event)")
    meta_set.add_argument("entry", metavar="ENTRY", help=entry_help)
    meta_set.add_argument("value", metavar="VALUE")
    meta_set.set_defaults(run=_metadata_set)
    meta_unset = metadata_command("unset", "remove one entry")
    meta_unset.add_argument("entry", metavar="ENTRY", help=entry_help)
    meta_unset.set_defaults(run=_metadata_unset)
    meta_list = metadata_command("list", "list entries (all, or those at or below PREFIX)")
    meta_list.add_argument("prefix", metavar="PREFIX", nargs="?", default="",
                           help="e.g. /private or /shared/vendor")
    meta_list.add_argument("--json", action="store_true",
                           help="print one JSON object instead of ENTRY<TAB>VALUE lines")
    meta_list.set_defaults(run=_metadata_list)

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
    lua_run.add_argument("-c", "--config", metavar="FILE",
                         help="use this configuration's plugin settings and mail store")
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

    events = commands.add_parser("events", help="watch push events")
    events_commands = events.add_subparsers(title="events commands", metavar="ACTION")
    tail = events_commands.add_parser(
        "tail", help="print push transactions as JSON lines as they are committed"
    )
    tail.add_argument("-c", "--config", metavar="FILE", help="configuration file")
    tail.add_argument("--user", help="only this user's transactions")
    tail.add_argument("--from-start", action="store_true",
                      help="begin with the transactions still in the outbox")
    tail.add_argument("--count", type=int, default=0,
                      help="stop after this many transactions (default: run until interrupted)")
    tail.set_defaults(run=_events_tail)

    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(title="config commands", metavar="ACTION")
    check = config_commands.add_parser("check", help="parse the configuration and report problems")
    check.add_argument("-c", "--config", metavar="FILE", help="configuration file")
    check.set_defaults(run=_config_check)
    return parser


def _load(args: argparse.Namespace) -> Settings:
    loaded: LoadedConfig = load_settings(args.config)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return loaded.settings


# --- serve -----------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    configure_logging()
    settings = _load(args)
    configure_logging(settings.log_path, settings.mail_debug)
    source = settings.source_path or "built-in defaults"
    log.info("mailpush %s starting (configuration: %s)", __version__, source)
    try:
        asyncio.run(serve(settings))
    except MailpushError as exc:
        log.error("%s", exc)
        return 1
    return 0


# --- deliver ---------------------------------------------------------------------


def _deliver(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        settings = _load(args)
    except ConfigError as exc:
        print(f"mailpush deliver: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    configure_logging(settings.log_path, settings.mail_debug)
    raw = sys.stdin.buffer.read()
    if not raw:
        print("mailpush deliver: empty message on standard input", file=sys.stderr)
        return EX_DATAERR
    if len(raw) > settings.max_message_size:
        print(
            f"mailpush deliver: message of {len(raw)} bytes exceeds"
            f" mailpush_max_message_size ({settings.max_message_size} bytes)",
            file=sys.stderr,
        )
        return EX_DATAERR
    # dovecot-lda's service name: `protocol lda { }` values apply, pushes carry "lda".
    lda = settings.for_protocol("lda")
    local, detail = split_detail(args.user, lda.lmtp.recipient_delimiter)
    user = UserDirectory(settings).resolve(local)
    if user is None:
        print(f"mailpush deliver: unknown user {args.user!r}", file=sys.stderr)
        return EX_NOUSER
    request = DeliveryRequest(user, raw, args.user, detail, args.mailbox)
    try:
        asyncio.run(_deliver_once(settings, request))
    except StoreError as exc:
        print(f"mailpush deliver: temporary failure: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except MailpushError:
        raise
    except Exception as exc:
        # Exit 75 rather than 1: an MTA bounces on 1 but keeps the mail queued on 75.
        logging.getLogger("mailpush.deliver").exception("delivery failed unexpectedly")
        print(f"mailpush deliver: internal error, try again later: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    return 0


async def _deliver_once(settings: Settings, request: DeliveryRequest) -> None:
    store = open_store(settings)
    try:
        # Queues the push transactions; the running server's dispatcher sends them.
        users = UserDirectory(settings)
        build_push(settings, store, users, delivery_service="lda")
        await build_delivery_agent(settings.for_protocol("lda"), store, users).deliver(request)
    finally:
        await asyncio.to_thread(store.close)


# --- users -----------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise MailpushError("the passwords do not match")
    if not password:
        raise MailpushError("refusing an empty password")
    return password


def _user_add(args: argparse.Namespace) -> int:
    settings = _load(args)
    fields: dict[str, str] = {}
    for item in args.field:
        key, sep, value = item.partition("=")
        if not key:
            raise MailpushError(f"--field {item!r}: expected KEY=VALUE")
        fields[key] = value if sep else ""
    path = settings.auth.passdb.path
    add_user(path, args.name, _read_password(args), args.scheme, home=args.home,
             extra_fields=fields)
    print(f"added {args.name} to {path}")
    return 0


def _user_del(args: argparse.Namespace) -> int:
    settings = _load(args)
    delete_user(settings.auth.passdb.path, args.name)
    print(f"deleted {args.name} from {settings.auth.passdb.path}")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    settings = _load(args)
    for record in list_users(settings.auth.passdb.path):
        print(record.username)
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    settings = _load(args)
    set_password(settings.auth.passdb.path, args.name, _read_password(args), args.scheme)
    print(f"changed the password of {args.name}")
    return 0


# --- queue and events ---------------------------------------------------------


def _with_store(args: argparse.Namespace, work: Callable[[SqliteStore], Awaitable[int]]) -> int:
    settings = _load(args)

    async def run() -> int:
        store = open_store(settings)
        try:
            return await work(store)
        finally:
            await asyncio.to_thread(store.close)

    return asyncio.run(run())


def _queue_status(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore) -> int:
        rows = await store.outbox.stats(time.time())
        print(f"{'driver':<16} {'pending':>8} {'inflight':>8} {'retrying':>8} {'dead':>6}"
              f" {'oldest':>10}")
        for row in rows:
            oldest = "-" if row.oldest_age is None else f"{row.oldest_age:.0f}s"
            print(f"{row.driver:<16} {row.pending:>8} {row.inflight:>8} {row.retrying:>8}"
                  f" {row.dead:>6} {oldest:>10}")
        return 0

    return _with_store(args, work)


def _queue_dead(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore) -> int:
        for letter in await store.outbox.dead_letters(args.driver):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter.created))
            print(f"{letter.outbox_id}\t{letter.driver}\t{letter.user}\t{letter.txn_id}\t"
                  f"{when}\tattempts={letter.attempts}\t{letter.last_error or ''}")
        return 0

    return _with_store(args, work)


def _queue_replay(args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        raise MailpushError("queue replay: give outbox ids or --all")

    async def work(store: SqliteStore) -> int:
        count = await store.outbox.replay(None if args.all else args.ids, args.driver)
        print(f"replaying {count} dead letter(s); the running server sends them within a second")
        return 0

    return _with_store(args, work)


def _events_tail(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore) -> int:
        last = 0 if args.from_start else await store.outbox.last_id()
        shown = 0
        while True:
            for record in await store.outbox.records_after(last, args.user):
                last = record.outbox_id
                txn = transaction_from_json(record.payload)
                print(json.dumps(transaction_to_dict(txn), ensure_ascii=False), flush=True)
                shown += 1
                if args.count and shown >= args.count:
                    return 0
            await asyncio.sleep(0.2)

    return _with_store(args, work)


# --- metadata --------------------------------------------------------------------


#: `metadata list` prints one entry per line: values keep their line breaks escaped.
_LINE_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _with_user_store(
    args: argparse.Namespace, work: Callable[[SqliteStore, str], Awaitable[int]]
) -> int:
    """Run `work` with the store and the store's name for USER.

    An unknown USER is refused, so a typo never creates an empty account.
    """
    settings = _load(args)
    user = UserDirectory(settings).resolve(args.user)
    if user is None:
        raise MailpushError(
            f"unknown user {args.user!r}: not in {settings.auth.passdb.path}"
            " (see `mailpush user list`)"
        )

    async def run() -> int:
        store = open_store(settings)
        try:
            return await work(store, user)
        finally:
            await asyncio.to_thread(store.close)

    return asyncio.run(run())


def _metadata_get(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore, user: str) -> int:
        value = await store.get_metadata(user, args.mailbox, args.entry)
        if value is None:
            print(f"mailpush: {args.entry} is not set", file=sys.stderr)
            return 1
        print(value)
        return 0

    return _with_user_store(args, work)


def _metadata_set(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore, user: str) -> int:
        await store.set_metadata(user, args.mailbox, args.entry, args.value)
        return 0

    return _with_user_store(args, work)


def _metadata_unset(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore, user: str) -> int:
        await store.set_metadata(user, args.mailbox, args.entry, None)
        return 0

    return _with_user_store(args, work)


def _metadata_list(args: argparse.Namespace) -> int:
    async def work(store: SqliteStore, user: str) -> int:
        entries = await store.list_metadata(user, args.mailbox, args.prefix)
        if args.json:
            print(json.dumps(entries, ensure_ascii=False))
            return 0
        for entry, value in entries.items():
            print(f"{entry}\t{value.translate(_LINE_ESCAPES)}")
        return 0

    return _with_user_store(args, work)


# --- lua ---------------------------------------------------------------------------


def _lua_check(args: argparse.Namespace) -> int:
    from .drivers.lua.tryout import MemoryStoreView, TryoutServices, check_script

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
    from .dispatch import FrameworkServices
    from .drivers import driver_configs
    from .drivers.lua.tryout import (
        MemoryStoreView,
        RunReport,
        TryoutServices,
        make_event,
        run_script,
    )

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
        settings = _load(args)
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


# --- config ----------------------------------------------------------------------


def _config_check(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
