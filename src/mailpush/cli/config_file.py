"""The `-c/--config` option every command that reads the configuration shares."""

from __future__ import annotations

import argparse
import logging
from typing import TypeAlias

from ..config import LoadedConfig, Settings, load_settings

log = logging.getLogger(__name__)

#: What `add_parser` of the top-level and group subcommands returns to.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_config_option(
    parser: argparse.ArgumentParser, help_text: str = "configuration file"
) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=help_text)


def add_command(
    commands: Commands, name: str, help_text: str, *, user: bool = False
) -> argparse.ArgumentParser:
    """A subcommand as every command group declares one: its help, `-c`, and (for
    commands about one user's mail) the USER argument, worded alike everywhere."""
    sub = commands.add_parser(name, help=help_text, description=help_text)
    add_config_option(sub)
    if user:
        sub.add_argument("user", metavar="USER", help="user name or address")
    return sub


def load_config(args: argparse.Namespace) -> Settings:
    """The settings of `--config`; its warnings go to the log, not to stdout."""
    loaded: LoadedConfig = load_settings(args.config)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return loaded.settings
