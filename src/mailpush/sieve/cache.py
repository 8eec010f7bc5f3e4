"""Compiled scripts kept per file version, so each delivery costs a `stat`, not a parse.

A version is (path, mtime, size): editing a script is picked up by the next
delivery without a reload. A script that does not compile is cached as its
error, so the error is logged once per version instead of once per message.
Everything here blocks (stat, read, compile) and runs on a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from ..errors import SieveScriptError
from .compiler import compile_script
from .locations import ScriptLocation
from .script import SieveScript

__all__ = ["DEFAULT_MAX_SCRIPT_SIZE", "LoadedScript", "ScriptCache"]

log = logging.getLogger(__name__)

#: Dovecot's `sieve_max_script_size` default.
DEFAULT_MAX_SCRIPT_SIZE = 1024 * 1024
#: Script versions kept; the least recently used go first.
MAX_ENTRIES = 10_000
#: The extension of scripts in a `sieve_before`/`sieve_after` directory.
SCRIPT_SUFFIX = ".sieve"

LoadedScript = SieveScript | SieveScriptError
_Version = tuple[int, int]


class ScriptCache:
    """Thread-safe; shared by every delivery of the process."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Path, tuple[_Version, LoadedScript]] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._missing_reported: set[Path] = set()

    def scripts_at(
        self, location: ScriptLocation, max_size: int = DEFAULT_MAX_SCRIPT_SIZE
    ) -> list[LoadedScript]:
        """The scripts a location names: one file, every `*.sieve` of a directory, or none."""
        path = location.path
        try:
            if path.is_dir():
                if location.personal:
                    log.debug("%s is a directory without ;active=, no script", path)
                    return []
                found = (self.load(file, max_size) for file in _scripts_in(path))
                return [loaded for loaded in found if loaded is not None]
        except OSError as exc:
            return [self._unreadable(path, exc)]
        loaded = self.load(path, max_size)
        if loaded is None:
            if location.personal:
                log.debug("personal script %s does not exist", path)
            elif path not in self._missing_reported:
                self._missing_reported.add(path)
                log.warning("%s script %s does not exist", location.setting, path)
            return []
        return [loaded]

    def load(self, path: Path, max_size: int = DEFAULT_MAX_SCRIPT_SIZE) -> LoadedScript | None:
        """The compiled script at `path` (or why it cannot be used); None when there is no file."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._unreadable(path, exc)
        version = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(path)
                return entry[1]
            # Compiled under the lock: two deliveries racing on a new version
            # must not compile it (and log its error) twice.
            loaded = self._compile(path, stat.st_size, max_size)
            self._entries[path] = (version, loaded)
            self._entries.move_to_end(path)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return loaded

    def _compile(self, path: Path, size: int, max_size: int) -> LoadedScript:
        name = str(path)
        if max_size and size > max_size:
            error = SieveScriptError(
                name, 0, f"script of {size} bytes exceeds sieve_max_script_size ({max_size} bytes)"
            )
        else:
            try:
                source = path.read_bytes()
            except OSError as exc:
                error = SieveScriptError(name, 0, f"cannot read: {exc.strerror or exc}")
            else:
                try:
                    return compile_script(source, name)
                except SieveScriptError as exc:
                    error = exc
        log.error("%s", error)
        return error

    def _unreadable(self, path: Path, exc: OSError) -> SieveScriptError:
        error = SieveScriptError(str(path), 0, f"cannot read: {exc.strerror or exc}")
        log.error("%s", error)
        return error


def _scripts_in(directory: Path) -> list[Path]:
    """`*.sieve` files in byte order of their names, as Dovecot runs them."""
    names = [
        entry.name
        for entry in os.scandir(directory)
        if entry.name.endswith(SCRIPT_SUFFIX) and not entry.is_dir()
    ]
    return [directory / name for name in sorted(names, key=os.fsencode)]
