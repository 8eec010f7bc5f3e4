"""Running `python -m mailpush.cli` as a user runs it: a separate process, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

COMMAND = (sys.executable, "-m", "mailpush.cli")


def mailpush(
    *args: str,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def mailpush_all(
    *commands: Sequence[str], timeout: float = 60
) -> list[subprocess.CompletedProcess[str]]:
    """Run several commands at once (each is slow to start, not to run); results in order."""
    running = [
        (command, subprocess.Popen(
            [*COMMAND, *command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))
        for command in commands
    ]
    results = []
    for command, process in running:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(
            subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)
        )
    return results
