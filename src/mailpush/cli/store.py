"""`mailpush store migrate`: bring the store's schema up to this mailpush, and nothing else.

The server and every command migrate the store when they open it; this runs
the migrations alone, so an upgrade's one-time work (version 4 reads and
summarises every stored body once) can be done, and timed, before the server
starts — and so an operator sees which steps ran.
"""

from __future__ import annotations

import argparse

from ..store.open_store import migrate_store, store_location
from .config_file import Commands, add_config_option, load_config
from .data_dir import prepare_data_dir, store_errors_explained


def register(commands: Commands) -> None:
    store = commands.add_parser("store", help="maintain the mail store")
    store_commands = store.add_subparsers(title="store commands", metavar="ACTION")
    help_text = "run the store's schema migrations (the server also runs them at start)"
    migrate = store_commands.add_parser("migrate", help=help_text, description=help_text)
    add_config_option(migrate)
    migrate.set_defaults(run=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    settings = load_config(args)
    prepare_data_dir(settings)
    path = store_location(settings)
    with store_errors_explained(settings):
        upgrade = migrate_store(settings)
    if upgrade.before is None:
        print(f"{path}: created with schema {upgrade.after}")
    elif not upgrade.applied:
        print(f"{path}: schema {upgrade.after} is current, nothing to do")
    else:
        print(f"{path}: schema {upgrade.before} → {upgrade.after}")
        for migration in upgrade.applied:
            print(f"  {migration.version}: {migration.what}")
    return 0
