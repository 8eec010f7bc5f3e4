"""The data directory: created by whichever command needs it first, problems as one line.

`serve`, `deliver`, `user add` and every store command may be the first to run
on a new host, so each prepares the directory the same way instead of failing
with an `OSError` traceback. The messages name the path and the setting, and
say what to do.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ..config import Settings
from ..errors import StoreError
from ..server import ServedStore, open_store

__all__ = ["DataDirError", "open_command_store", "prepare_data_dir", "store_errors_explained"]


class DataDirError(StoreError):
    """The data directory (or the store in it) cannot be created, written or opened."""


def prepare_data_dir(settings: Settings) -> Path:
    """Create `mailpush_data_dir` (mode 0700) if missing; refuse one this user cannot write."""
    path = settings.data_dir
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(
            f"cannot create the data directory {path} (mailpush_data_dir"
            f"{_in(settings)}): {exc.strerror or exc}; create it and give it to"
            f" {_whoami()}, or set mailpush_data_dir to a directory {_whoami()} can write"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(_not_writable(settings, path))
    return path


def open_command_store(settings: Settings) -> ServedStore:
    """The store of `settings`, opened for a command, its data directory prepared first."""
    prepare_data_dir(settings)
    with store_errors_explained(settings):
        return open_store(settings)


@contextlib.contextmanager
def store_errors_explained(settings: Settings) -> Iterator[None]:
    """Turn the OS and SQLite errors of opening or writing the store into a `DataDirError`."""
    try:
        yield
    except BrokenPipeError:
        raise  # stdout's reader went away (`| head`): not the store's problem
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        if not os.access(settings.data_dir, os.W_OK) or "readonly" in reason:
            raise DataDirError(_not_writable(settings, settings.data_dir, reason)) from None
        raise DataDirError(
            f"cannot use the mail store in {settings.data_dir} (mailpush_data_dir"
            f"{_in(settings)}): {reason}; check that the disk is mounted and has space"
        ) from None


def _not_writable(settings: Settings, path: Path, reason: str = "") -> str:
    detail = f" ({reason})" if reason else ""
    if _read_only_filesystem(path):
        return (
            f"the data directory {path} (mailpush_data_dir{_in(settings)}) is on a read-only"
            " filesystem; remount it read-write (with systemd's ProtectSystem=strict, list it"
            " in ReadWritePaths=), or point mailpush_data_dir at a writable directory"
        )
    return (
        f"the data directory {path} (mailpush_data_dir{_in(settings)}) is not writable"
        f" for {_whoami()}{detail}; run the command as the user that owns it, make it"
        f" writable (chown -R {_whoami()} {path}), or point mailpush_data_dir at a"
        " writable directory"
    )


def _read_only_filesystem(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _in(settings: Settings) -> str:
    return f" in {settings.source_path}" if settings.source_path else ", built-in default"


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
