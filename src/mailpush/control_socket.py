"""The control socket: admin commands that need the running server (`mailpush who|kick|reload`).

A UNIX socket in the data directory (`control.sock`, mode 0600), so only the
user the server runs as (and root) can ask; nothing listens on the network
for it. One request per connection, one JSON object per line each way:

    → {"command": "who"}
    ← {"ok": true, "sessions": [{"service": "imap", "user": "alice", ...}]}
    → {"command": "kick", "user": "alice"}
    ← {"ok": true, "kicked": 2}
    → {"command": "reload"}
    ← {"ok": false, "message": "/etc/mailpush.conf:12: ..."}
    → {"command": "metrics"}
    ← {"ok": true, "text": "# HELP mailpush_lmtp_deliveries_total ..."}
    → {"command": "ready"}
    ← {"ok": true, "problems": ["store: no write lock within 2s"]}

(`metrics` and `ready` are how worker 0 gathers the other workers' metrics
for `/metrics` and their readiness for `/readyz`.)

The server side knows nothing of IMAP or LMTP: it calls a `ControlCommands`
the server implements. `ask` is the client the CLI uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import ServiceError

__all__ = [
    "CONTROL_SOCKET",
    "ConnectedSession",
    "ControlCommands",
    "ControlSocket",
    "ReloadOutcome",
    "ask",
    "control_socket_path",
]

log = logging.getLogger(__name__)

#: The socket's file name in `mailpush_data_dir`.
CONTROL_SOCKET = "control.sock"
#: Longest request line read; requests are a few dozen bytes.
MAX_REQUEST = 4096
#: Linux's limit for a UNIX socket path (sun_path holds 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


@dataclass(frozen=True, slots=True)
class ConnectedSession:
    """One open IMAP or LMTP connection, as `mailpush who` lists it."""

    service: str
    #: The logged-in user (IMAP), the recipients' users of the transaction under way
    #: (LMTP, comma-separated), or "" when there is none yet.
    user: str
    remote_ip: str
    #: Unix time the client connected.
    since: float


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload did: applied, or refused and why (the running configuration stays)."""

    applied: bool
    message: str
    #: Changes that were not applied because they need a restart.
    restart_needed: tuple[str, ...] = field(default_factory=tuple)


class ControlCommands(Protocol):
    """What the running server offers the control socket."""

    def sessions(self) -> list[ConnectedSession]: ...

    def kick(self, user: str) -> int: ...

    def reload(self) -> Awaitable[ReloadOutcome]: ...

    def metrics_text(self) -> str:
        """This process's metrics in Prometheus' text format."""
        ...

    def readiness_problems(self) -> Awaitable[list[str]]:
        """What keeps this process from taking work, as `/readyz` lists it; empty when ready."""
        ...


def control_socket_path(data_dir: Path) -> Path:
    return data_dir / CONTROL_SOCKET


class ControlSocket:
    """Listens on the control socket and answers each request through `commands`."""

    def __init__(self, path: Path, commands: ControlCommands) -> None:
        self.path = path
        self._commands = commands
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind the socket (mode 0600 before anyone can connect).

        A socket file left by a server that died is replaced; one a running
        server answers on is a `ServiceError`: two servers on one data directory
        would write the same store.
        """
        path = str(self.path)
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ServiceError(
                f"control socket {path}: the path is longer than {MAX_SOCKET_PATH} bytes, the"
                " most a UNIX socket may have; use a shorter mailpush_data_dir"
            )
        if self.path.exists() or self.path.is_symlink():
            if await _answers(path):
                raise ServiceError(
                    f"control socket {path}: another mailpush server runs on this data"
                    " directory (mailpush_data_dir); stop it first"
                )
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            # Not listening yet, so nobody can connect before the mode is narrowed.
            os.chmod(path, 0o600)
            sock.listen(16)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_REQUEST
            )
        except OSError as exc:
            sock.close()
            raise ServiceError(f"control socket {path}: {exc.strerror or exc}") from exc

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), 10)
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, asyncio.LimitOverrunError, TimeoutError) as exc:
                answer: dict[str, Any] = {"ok": False, "message": f"bad request: {exc}"}
            else:
                answer = await self._answer(request)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except ConnectionError:
            pass
        except Exception:
            log.exception("control socket: a request failed")
        finally:
            writer.close()

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("command")
        if command == "who":
            return {"ok": True, "sessions": [asdict(s) for s in self._commands.sessions()]}
        if command == "kick":
            user = request.get("user")
            if not isinstance(user, str) or not user:
                return {"ok": False, "message": "kick: give the user name"}
            return {"ok": True, "kicked": self._commands.kick(user)}
        if command == "reload":
            outcome = await self._commands.reload()
            return {
                "ok": outcome.applied,
                "message": outcome.message,
                "restart_needed": list(outcome.restart_needed),
            }
        if command == "metrics":
            return {"ok": True, "text": self._commands.metrics_text()}
        if command == "ready":
            return {"ok": True, "problems": await self._commands.readiness_problems()}
        return {
            "ok": False,
            "message": f"unknown command {command!r} (known: who, kick, reload, metrics, ready)",
        }


async def ask(path: Path, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Send one request to the server's control socket and return its answer.

    Raises ServiceError when no server answers there, naming the path.
    """
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024), timeout
        )
    except (OSError, TimeoutError) as exc:
        reason = getattr(exc, "strerror", None) or "no answer"
        raise ServiceError(
            f"no mailpush server answers on {path} ({reason}): is `mailpush serve` running"
            " with this configuration (the same mailpush_data_dir)?"
        ) from exc
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as exc:
        raise ServiceError(f"control socket {path}: no answer from the server ({exc})") from exc
    finally:
        writer.close()
    try:
        answer = json.loads(line)
    except ValueError as exc:
        raise ServiceError(f"control socket {path}: unreadable answer: {line[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise ServiceError(f"control socket {path}: unreadable answer: {line[:200]!r}")
    return answer


async def _answers(path: str) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
