"""Compiled scripts cached per (path, mtime, size); errors logged once per version."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from mailpush.errors import SieveScriptError
from mailpush.sieve.cache import ScriptCache
from mailpush.sieve.locations import ScriptLocation
from mailpush.sieve.script import SieveScript


def write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_unchanged_script_is_compiled_once(tmp_path: Path) -> None:
    path = tmp_path / "a.sieve"
    write(path, "keep;", 1_000_000_000)
    cache = ScriptCache()
    first = cache.load(path)
    assert isinstance(first, SieveScript)
    assert cache.load(path) is first


def test_changed_script_is_recompiled(tmp_path: Path) -> None:
    path = tmp_path / "a.sieve"
    write(path, "keep;", 1_000_000_000)
    cache = ScriptCache()
    first = cache.load(path)
    write(path, "keep;", 2_000_000_000)  # same size, newer
    second = cache.load(path)
    assert isinstance(second, SieveScript) and second is not first
    write(path, "discard;", 2_000_000_000)  # same time, other size
    third = cache.load(path)
    assert isinstance(third, SieveScript) and third.commands != second.commands


def test_broken_script_is_logged_once_per_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "broken.sieve"
    write(path, "keep;\nfileinto;\n", 1_000_000_000)
    cache = ScriptCache()
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        for _ in range(3):
            assert isinstance(cache.load(path), SieveScriptError)
        write(path, "keep;\n\nfileinto;\n", 2_000_000_000)
        assert isinstance(cache.load(path), SieveScriptError)
    assert {r.name for r in caplog.records} == {"mailpush.sieve.cache"}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:2: ")
    assert lines[1].startswith(f"{path}:3: ")


def test_missing_file_is_no_script(tmp_path: Path) -> None:
    cache = ScriptCache()
    assert cache.load(tmp_path / "none.sieve") is None
    personal = ScriptLocation("sieve", tmp_path / "none.sieve", True)
    assert cache.scripts_at(personal) == []


def test_oversized_script_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.sieve"
    write(path, "keep;" * 100, 1_000_000_000)
    location = ScriptLocation("sieve", path, True)
    (loaded,) = ScriptCache().scripts_at(location, max_size=100)
    assert isinstance(loaded, SieveScriptError)
    assert "sieve_max_script_size" in loaded.reason


def test_directory_runs_every_sieve_file_in_name_order(tmp_path: Path) -> None:
    directory = tmp_path / "before.d"
    directory.mkdir()
    for name in ("20-b.sieve", "10-a.sieve", "B.sieve", "notes.txt"):
        write(directory / name, "keep;", 1_000_000_000)
    (directory / "sub.sieve").mkdir()
    loaded = ScriptCache().scripts_at(ScriptLocation("sieve_before", directory, False))
    assert [Path(s.name).name for s in loaded if isinstance(s, SieveScript)] == [
        "10-a.sieve",
        "20-b.sieve",
        "B.sieve",
    ]
