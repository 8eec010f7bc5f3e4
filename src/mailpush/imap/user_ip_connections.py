"""Logged-in connections per user and remote IP, for Dovecot's `mail_max_userip_connections`.

One count is shared by every IMAP listener of the process, so it lives
outside the server and the connection that update it.
"""

from __future__ import annotations

__all__ = ["UserIpConnections"]


class UserIpConnections:
    """How many logged-in IMAP connections each (user, remote IP) has."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}

    def count(self, user: str, remote_ip: str) -> int:
        return self._counts.get((user, remote_ip), 0)

    def add(self, user: str, remote_ip: str) -> None:
        key = (user, remote_ip)
        self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, user: str, remote_ip: str) -> None:
        key = (user, remote_ip)
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)
