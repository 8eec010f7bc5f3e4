"""A private `mailpush serve` process on loopback, the counterpart of DovecotInstance.

bench/compare.py runs the same workloads against both servers, so this offers
what `DovecotInstance` offers (users, an optional Lua push script,
`plugin_settings`, `output_file()`, the two ports) with mailpush's own
defaults left alone: whatever mailpush ships is what gets measured. It runs as
its own process, as an admin would run it, so that its CPU is its own and a
profiler can attach to `pid`.

It is also the one place a benchmark starts mailpush: `MailpushProcess` runs
`mailpush serve` with a configuration the benchmark wrote itself (lmtp_deliver,
push, lua, imap), `MailpushInstance` writes a configuration shaped like
DovecotInstance's and runs a `MailpushProcess` with it.

`MAILPUSH_BENCH_WORKERS=N` in the environment (or `workers=N`) sets
`mailpush_workers` in that configuration, to measure N worker processes
against mailpush's own default (docs/operations.md#workers); `pid` is then the
supervisor's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["MailpushInstance", "MailpushProcess", "free_port"]

STOP_TIMEOUT_S = 60
START_TIMEOUT_S = 30
#: The environment variable that sets `mailpush_workers` for every benchmark instance.
WORKERS_VARIABLE = "MAILPUSH_BENCH_WORKERS"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailpushProcess:
    """`async with MailpushProcess(config, ports, log):` `mailpush serve`, listening on `ports`."""

    def __init__(self, config: Path, ports: Sequence[int], log_path: Path) -> None:
        self.config = config
        self.ports = tuple(ports)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> MailpushProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("mailpush is not running")
        return self._process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "mailpush.cli", "serve", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log,
            )
        try:
            for port in self.ports:
                await _wait_listening(port, self._process)
        except BaseException as error:
            await self.stop()
            raise RuntimeError(
                f"mailpush did not start; its log ({self.log_path}):\n{self.log_text()}"
            ) from error

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


class MailpushInstance:
    """`async with MailpushInstance(users, lua_script=...) as mailpush:` LMTP and IMAP."""

    def __init__(
        self,
        users: Sequence[tuple[str, str]],
        lua_script: Path | None = None,
        plugin_settings: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        workers: int | None = None,
    ) -> None:
        self._users = tuple(users)
        self._lua_script = lua_script
        self.plugin_settings = dict(plugin_settings or {})
        #: Global settings that replace mailpush's defaults (bench/imap.py's many idlers).
        self.settings = dict(settings or {})
        workers_text = str(workers) if workers is not None else os.environ.get(WORKERS_VARIABLE)
        if workers_text:
            self.settings.setdefault("mailpush_workers", workers_text)
        self.lmtp_port = free_port()
        self.imap_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="mailpush-compare-"))
        self._process: MailpushProcess | None = None

    async def __aenter__(self) -> MailpushInstance:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("mailpush is not running")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "serve.log"

    @property
    def output_dir(self) -> Path:
        return self.workdir / "out"

    def output_file(self, name: str) -> Path:
        path = self.output_dir / name
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path.touch()
        return path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        process = MailpushProcess(
            self._write_config(), (self.lmtp_port, self.imap_port), self.log_path
        )
        await process.start()
        self._process = process

    async def stop(self, keep_workdir: bool = False) -> None:
        process, self._process = self._process, None
        if process is not None:
            await process.stop()
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _write_config(self) -> Path:
        directory = self.workdir
        (directory / "data").mkdir(exist_ok=True)
        users = directory / "users"
        users.write_text("".join(f"{name}:{{PLAIN}}{password}::::::\n"
                                 for name, password in self._users))
        plugin = dict(self.plugin_settings)
        plugins_line = ""
        if self._lua_script is not None:
            # The very lines a Dovecot admin writes (DovecotInstance writes the same).
            plugins_line = ("mail_plugins = $mail_plugins notify push_notification mail_lua "
                            "push_notification_lua\n")
            plugin.setdefault("push_notification_driver", f"lua:file={self._lua_script}")
        plugin_block = ""
        if plugin:
            plugin_block = "plugin {\n" + "".join(
                f"  {key} = {value}\n" for key, value in plugin.items()
            ) + "}\n"
        config = directory / "mailpush.conf"
        config.write_text(
            textwrap.dedent(
                f"""\
                protocols = imap lmtp
                mailpush_data_dir = {directory / "data"}
                passdb {{
                  driver = passwd-file
                  args = {users}
                }}
                service lmtp {{
                  inet_listener lmtp {{
                    address = 127.0.0.1
                    port = {self.lmtp_port}
                  }}
                }}
                service imap-login {{
                  inet_listener imap {{
                    address = 127.0.0.1
                    port = {self.imap_port}
                  }}
                  inet_listener imaps {{
                    port = 0
                  }}
                }}
                """
            )
            + "".join(f"{key} = {value}\n" for key, value in self.settings.items())
            + plugins_line
            + plugin_block
        )
        return config


async def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("mailpush exited during start-up")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("mailpush did not start listening")
