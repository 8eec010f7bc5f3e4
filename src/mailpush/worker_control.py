"""The supervisor's control socket: `mailpush who|kick|reload` asked of every worker.

With `mailpush_workers` > 1 each worker answers its own control socket
(`<data_dir>/workers/<index>.sock`) for its own connections. The supervisor
listens on the usual `control.sock`, forwards each request to every worker
as it came and merges the answers: `who` lists every worker's sessions
(oldest first), `kick` adds up the disconnected ones, `reload` is applied
when every worker applied it. A worker that does not answer (it is being
restarted) is named in the answer rather than failing the request: the
others' answers still count.

`ControlSocket` asks its `ControlCommands` for sessions and kicks
synchronously, which one process can answer from memory; here the answers
come from other processes, so `_answer` is replaced and the socket's
binding, permissions and line protocol are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .control_socket import ConnectedSession, ControlSocket, ReloadOutcome, ask
from .errors import ServiceError

__all__ = ["WorkersControlSocket"]

log = logging.getLogger(__name__)

#: Seconds a worker gets to answer; a reload re-reads the file and rebuilds drivers.
WORKER_ANSWER_TIMEOUT = 60.0


class WorkersControlSocket(ControlSocket):
    """`control.sock` of a supervisor, answered by asking every worker's socket."""

    def __init__(self, path: Path, workers: Callable[[], Sequence[Path]]) -> None:
        super().__init__(path, self)
        self._workers = workers

    # `ControlCommands`, for the protocol's sake: `_answer` below asks the workers instead.

    def sessions(self) -> list[ConnectedSession]:
        raise ServiceError("the supervisor asks its workers for their sessions")

    def kick(self, user: str) -> int:
        raise ServiceError("the supervisor asks its workers to kick")

    async def reload(self) -> ReloadOutcome:
        raise ServiceError("the supervisor asks its workers to reload")

    def metrics_text(self) -> str:
        raise ServiceError("worker 0 gathers the workers' metrics for /metrics")

    async def readiness_problems(self) -> list[str]:
        raise ServiceError("worker 0 gathers the workers' readiness for /readyz")

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("command")
        if command not in ("who", "kick", "reload"):
            return {
                "ok": False,
                "message": f"unknown command {command!r} (known: who, kick, reload)",
            }
        answers = await asyncio.gather(*(_ask_worker(path, request) for path in self._workers()))
        if command == "who":
            return _merged_sessions(answers)
        if command == "kick":
            return _merged_kicks(answers)
        return _merged_reloads(answers)


async def _ask_worker(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """One worker's answer; one that cannot be asked is an answer saying so."""
    try:
        return await ask(path, request, WORKER_ANSWER_TIMEOUT)
    except ServiceError as exc:
        log.warning("control socket: %s", exc)
        return {"ok": False, "message": f"worker {path.stem} did not answer", "unanswered": True}


def _merged_sessions(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    sessions = [session for answer in answers for session in answer.get("sessions", [])]
    sessions.sort(key=lambda session: float(session.get("since", 0)))
    missing = [answer["message"] for answer in answers if not answer.get("ok")]
    merged: dict[str, Any] = {"ok": True, "sessions": sessions}
    if missing:
        merged["message"] = "; ".join(missing)
    return merged


def _merged_kicks(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    refused = [answer for answer in answers if not answer.get("ok")]
    if refused and not refused[0].get("unanswered"):
        return refused[0]  # a bad request: every worker says the same
    kicked = sum(int(answer.get("kicked", 0)) for answer in answers)
    merged: dict[str, Any] = {"ok": True, "kicked": kicked}
    if refused:
        merged["message"] = "; ".join(answer["message"] for answer in refused)
    return merged


def _merged_reloads(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Applied when every worker applied it; else the first refusal, naming the workers."""
    restart_needed = list(
        dict.fromkeys(name for answer in answers for name in answer.get("restart_needed", []))
    )
    refusals = [
        f"worker {index}: {answer.get('message')}"
        for index, answer in enumerate(answers) if not answer.get("ok")
    ]  # fmt: skip
    if refusals:
        applied = len(answers) - len(refusals)
        return {
            "ok": False,
            "message": "; ".join(refusals)
            + (f" ({applied} other worker(s) reloaded)" if applied else ""),
            "restart_needed": restart_needed,
        }
    messages = list(dict.fromkeys(str(answer.get("message", "")) for answer in answers))
    return {
        "ok": True,
        "message": "; ".join(messages) + f" (in {len(answers)} workers)",
        "restart_needed": restart_needed,
    }
