"""A private, real Dovecot 2.3 on loopback, for differential tests and benchmarks.

mailpush claims to behave like Dovecot; the only way to check that claim (and to
measure against it) is to run the real thing beside it. This starts Debian's
`dovecot` in the foreground with a configuration written from scratch into its
own work directory: its own run and state directories, Maildir storage, a
passwd-file of PLAIN users, one LMTP and one IMAP listener on 127.0.0.1, and
optionally the Lua push driver with a script. Nothing of the system Dovecot
(/etc/dovecot, /run/dovecot, ports 24/143/993) is touched.

    async with DovecotInstance(users=[("alice", "secret")], lua_script=script) as dovecot:
        smtplib.LMTP("127.0.0.1", dovecot.lmtp_port)
        imaplib.IMAP4("127.0.0.1", dovecot.imap_port)

Privileges. Dovecot refuses to open mail as root ("Mail access not allowed for
root"). Run as root, the master keeps root (it needs it for its own services)
and mail processes switch to `nobody`; every path they touch (Maildirs, homes,
the Lua script, files a script writes in `output_dir`) must then be reachable
by `nobody`, so the work directory and all its parents must be searchable by
others. pytest's `tmp_path` is not (`/tmp/pytest-of-root` is mode 0700): leave
`workdir` unset to get a fresh directory under the system temp dir, removed
again on exit. Run as another user, every process stays that user.

Importable both ways: `from bench.dovecot_instance import DovecotInstance`
(tests, run from the repository root) and `from dovecot_instance import ...`
(scripts in bench/).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "DovecotError",
    "DovecotInstance",
    "DovecotStartError",
    "DovecotUnavailableError",
    "dovecot_binary",
    "dovecot_version",
]

# The Debian packages providing everything used here; the Lua push driver
# (lib22_push_notification_lua_plugin.so) and mail_lua are in dovecot-core.
DEBIAN_PACKAGES = ("dovecot-core", "dovecot-imapd", "dovecot-lmtpd")

# Debian's package creates it; Dovecot's own services (auth, stats, ...) run as it.
INTERNAL_USER = "dovecot"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
# Unix sockets live in base_dir; their full path must fit in sun_path (108 bytes),
# and Dovecot's longest socket name under it is about 25 characters.
MAX_BASE_DIR_LENGTH = 80


class DovecotError(Exception):
    """The private Dovecot instance could not be set up, started or stopped."""


class DovecotUnavailableError(DovecotError):
    """No Dovecot binary is installed here."""


class DovecotStartError(DovecotError):
    """Dovecot exited or did not answer on its ports during start-up."""


def dovecot_binary() -> str | None:
    """Path of the `dovecot` master binary, also when /usr/sbin is not on PATH."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def dovecot_version() -> str | None:
    """`dovecot --version` (e.g. `2.3.19.1 (9b53102964)`), or None if not installed."""
    binary = dovecot_binary()
    if binary is None:
        return None
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or None


class DovecotInstance:
    """One private Dovecot master process and everything it writes.

    Start with `async with` (or `await start()` / `await stop()`). Ports given as
    0 are chosen free on 127.0.0.1. `plugin_settings` go into `plugin { }`
    (the Lua script reads them with `user:plugin_getenv(key)`) and may still be
    changed before start(), e.g. to name a file in `output_dir`; `settings` are
    extra top-level `key = value` lines, `extra_config` is appended verbatim
    (e.g. `service lmtp { process_min_avail = 2 }`). Without `workdir` a fresh
    directory is made here and removed by stop().
    """

    def __init__(
        self,
        workdir: Path | None = None,
        users: Sequence[tuple[str, str]] = (("alice", "secret"),),
        lua_script: Path | None = None,
        plugin_settings: Mapping[str, str] | None = None,
        lmtp_port: int = 0,
        imap_port: int = 0,
        *,
        settings: Mapping[str, str] | None = None,
        extra_config: str = "",
        mail_debug: bool = False,
    ) -> None:
        self._binary = dovecot_binary()
        self._users = tuple(users)
        self._lua_script = lua_script
        self.plugin_settings = dict(plugin_settings or {})
        self._settings = dict(settings or {})
        self._extra_config = extra_config
        self._mail_debug = mail_debug
        self.lmtp_port = lmtp_port or _free_port()
        self.imap_port = imap_port or _free_port()
        # Known from the start, so that settings can name files in it before start().
        self._owns_workdir = workdir is None
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        else:
            self.workdir = workdir.resolve()
        self._process: asyncio.subprocess.Process | None = None
        self.startup_seconds: float | None = None
        self._mail_uid, self._mail_gid = _mail_ids()

    async def __aenter__(self) -> DovecotInstance:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- what callers use --------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.workdir / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    @property
    def output_dir(self) -> Path:
        """A directory the mail processes (and so Lua scripts) may write files into."""
        return self.workdir / "out"

    def output_file(self, name: str) -> Path:
        """An empty file in `output_dir` that mail processes can append to.

        For files the caller writes to as well (e.g. markers between operations
        in a script's record): created by root, they would be closed to `nobody`.
        """
        path = self.output_dir / name
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.chown(path, self._mail_uid, self._mail_gid)
        return path

    def maildir(self, user: str) -> Path:
        return self.workdir / "mail" / user

    def log_text(self) -> str:
        """Dovecot's log, plus anything the master printed before its log was open."""
        parts = []
        for path in (self.workdir / "dovecot.stderr", self.log_path):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    async def start(self) -> None:
        if self._binary is None:
            raise DovecotUnavailableError(
                "dovecot is not installed: apt-get install " + " ".join(DEBIAN_PACKAGES)
            )
        if self._process is not None:
            raise DovecotError("this DovecotInstance is already running")
        self._prepare_workdir()
        config = self._write_config()
        started = time.monotonic()
        stderr = (self.workdir / "dovecot.stderr").open("wb")
        try:
            # A session of its own: if the master ever dies uncleanly, its children
            # are still reachable as one process group.
            self._process = await asyncio.create_subprocess_exec(
                self._binary, "-F", "-c", str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stderr.close()
        try:
            await self._wait_ready(started + START_TIMEOUT_S)
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    async def stop(self) -> None:
        """SIGTERM the master and wait for it; the whole group is killed if it hangs."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                # Not reaped yet, so the group id is still ours: take the children too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- setting up ----------------------------------------------------------------

    def _prepare_workdir(self) -> None:
        workdir = self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        base_dir = workdir / "run"
        if len(str(base_dir)) > MAX_BASE_DIR_LENGTH:
            raise DovecotError(
                f"work directory {workdir} is too long for Dovecot's unix sockets "
                f"(base_dir must stay under {MAX_BASE_DIR_LENGTH} characters): "
                "pass a shorter workdir or none"
            )
        workdir.chmod(0o755)
        if os.geteuid() == 0:
            _check_reachable(workdir, self._mail_uid, self._mail_gid)
        for name in ("mail", "home", "out"):
            directory = workdir / name
            directory.mkdir(exist_ok=True)
            os.chown(directory, self._mail_uid, self._mail_gid)
        (workdir / "state").mkdir(exist_ok=True)
        users = workdir / "users"
        users.write_text("".join(f"{name}:{{PLAIN}}{password}::::::\n"
                                 for name, password in self._users))
        # The auth process reads it as default_internal_user (`dovecot`).
        if os.geteuid() == 0:
            os.chown(users, 0, pwd.getpwnam(INTERNAL_USER).pw_gid)
        users.chmod(0o640)

    def _write_config(self) -> Path:
        workdir = self.workdir
        lines = [
            "# Written by bench/dovecot_instance.py: a private instance, nothing shared.",
            f"base_dir = {workdir / 'run'}",
            f"state_dir = {workdir / 'state'}",
            f"instance_name = {_instance_name(workdir)}",
            "protocols = imap lmtp",
            "listen = 127.0.0.1",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            f"log_path = {self.log_path}",
            f"mail_location = maildir:{workdir / 'mail'}/%u",
            f"mail_home = {workdir / 'home'}/%u",
            f"mail_uid = {self._mail_uid}",
            f"mail_gid = {self._mail_gid}",
            f"mail_debug = {'yes' if self._mail_debug else 'no'}",
        ]
        if os.geteuid() != 0:
            # An unprivileged master runs every service as itself.
            me = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            lines += [
                f"default_internal_user = {me}",
                f"default_internal_group = {group}",
                f"default_login_user = {me}",
            ]
        lines += [f"{key} = {_checked(key, value)}" for key, value in self._settings.items()]
        plugin = dict(self.plugin_settings)
        if self._lua_script is not None:
            script = workdir / "push.lua"
            shutil.copyfile(self._lua_script, script)
            script.chmod(0o644)
            lines.append("mail_plugins = $mail_plugins notify push_notification mail_lua "
                         "push_notification_lua")
            plugin.setdefault("push_notification_driver", f"lua:file={script}")
        if plugin:
            lines.append("plugin {")
            lines += [f"  {key} = {_checked(key, value)}" for key, value in plugin.items()]
            lines.append("}")
        lines += [
            "passdb {",
            "  driver = passwd-file",
            f"  args = {workdir / 'users'}",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = {workdir / 'users'}",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            f"    port = {self.imap_port}",
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
            "}",
            "service lmtp {",
            "  inet_listener lmtp {",
            "    address = 127.0.0.1",
            f"    port = {self.lmtp_port}",
            "  }",
            "}",
        ]
        if os.geteuid() != 0:
            # Without root there is no chroot() and no switching users: services
            # that do either by default are told not to (blocks merge with the above).
            me = pwd.getpwuid(os.geteuid()).pw_name
            lines += ["service auth {", f"  user = {me}", "}"]
            for service in ("anvil", "imap-login", "imap-urlauth-login", "ipc"):
                lines += [f"service {service} {{", "  chroot =", "}"]
        config = self.config_path
        config.write_text("\n".join(lines) + "\n" + self._extra_config)
        return config

    async def _wait_ready(self, deadline: float) -> None:
        """Both listeners answer with their greeting (so login and lmtp processes work).

        Each probe leaves one "Disconnect ... (state=GREETING)" line in the log.
        """
        pending = {self.lmtp_port: b"220 ", self.imap_port: b"* OK"}
        while pending:
            process = self._process
            assert process is not None
            if process.returncode is not None:
                raise DovecotStartError(
                    f"dovecot exited with status {process.returncode} during start-up; "
                    f"its log ({self.log_path}):\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                raise DovecotStartError(
                    f"dovecot did not answer on 127.0.0.1 ports {sorted(pending)} within "
                    f"{START_TIMEOUT_S:.0f} s; its log ({self.log_path}):\n{self.log_text()}"
                )
            for port, greeting in list(pending.items()):
                if await _greets(port, greeting):
                    del pending[port]
            if pending:
                await asyncio.sleep(0.05)


def _instance_name(workdir: Path) -> str:
    """Shown in process titles (`dovecot-abc123/imap`), to tell instances apart."""
    return workdir.name if workdir.name.startswith("dovecot") else f"dovecot-{workdir.name}"


def _mail_ids() -> tuple[int, int]:
    """The uid/gid mail processes run as: `nobody` for root, else ourselves."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _check_reachable(workdir: Path, uid: int, gid: int) -> None:
    for directory in (workdir, *workdir.parents):
        info = directory.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise DovecotError(
                f"Dovecot's mail processes run as uid {uid} and cannot enter {directory} "
                f"(mode {stat.filemode(info.st_mode)}), so they could not reach {workdir}: "
                "pass a workdir whose parents are searchable by others, or none "
                "(a fresh one under the system temp dir)"
            )


def _checked(key: str, value: str) -> str:
    if "\n" in key or "\n" in value or not key.strip():
        raise DovecotError(f"Dovecot setting {key!r}: names and values must be one line")
    return value


def _free_port() -> int:
    """A port below the ephemeral range (32768-60999 on Linux), so that no client
    socket can take it between this choice and Dovecot's bind."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise DovecotError("no free loopback port in 20000-31999 for Dovecot")


async def _greets(port: int, greeting: bytes) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 1.0
        )
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), 2.0)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return line.startswith(greeting)
