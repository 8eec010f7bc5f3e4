"""The lines Dovecot's imap-login and imap processes log for one connection.

Written against what Dovecot 2.3.19 logs (observed with bench/dovecot_instance.py):

    imap-login: Info: Login: user=<alice>, method=PLAIN, rip=127.0.0.1,
        lip=127.0.0.1, mpid=6374, secured, session=<R4gcet5hlpZ/AAAB>
    imap(alice)<6374><R4gcet5hlpZ/AAAB>: Info: Disconnected: Logged out in=32 out=819
    imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 6 secs):
        user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, secured,
        session=<Rsgzet5hoJZ/AAAB>

(each one line in the log; Dovecot's logout line goes on with `deleted=0 ...`).
fail2ban's stock `dovecot` filter counts the last shape, one line per
connection that failed to log in (its failregex wants the `(auth failed, N
attempts ...)` part, a reason without `(` before it, and `rip=`). So that a
failure is never counted twice, the immediate per-attempt line mailpush adds
(`Login failed (auth failed): ...`) is of a shape the filter ignores.

The connection owns the state (attempts, the last user name tried); this
module only keeps it and writes the text, and switches the connection's log
prefix from `imap-login` to `imap(user)<pid><session>` at login, as
Dovecot's processes change. The lines are logged by the connection's logger.
"""

from __future__ import annotations

import os
import time

from ..logs.session import LogSession, enter_session, new_session_id

__all__ = ["ConnectionLog"]


class ConnectionLog:
    """Login attempts and the session id of one IMAP connection, and its log lines."""

    def __init__(self, rip: str, lip: str, tls: bool, secured: bool) -> None:
        self.session_id = new_session_id()
        self._rip = rip
        self._lip = lip
        self._tls = tls
        self._secured = secured
        self._started = time.monotonic()
        self._attempts = 0
        self._user = ""
        self._mechanism = ""
        self._plaintext_refused = False
        self.logged_in = False

    def begin(self) -> None:
        """Lines logged while serving the connection from now on carry `imap-login`."""
        enter_session(LogSession("imap-login", self.session_id, self._rip, self._lip))

    def tls_started(self) -> None:
        self._tls = self._secured = True

    def auth_failed(self, user: str, mechanism: str) -> str:
        """Count a failed attempt; the immediate line (which fail2ban does not count)."""
        self._attempts += 1
        self._user, self._mechanism = user, mechanism
        return f"Login failed (auth failed): {self._elements(user, mechanism)}"

    def plaintext_refused(self, user: str, mechanism: str) -> str:
        self._plaintext_refused = True
        self._user, self._mechanism = user, mechanism
        return (
            "Login refused (plaintext authentication disabled): "
            + self._elements(user, mechanism)
        )

    def refused(self, reason: str, user: str, mechanism: str) -> str:
        """A login the server refused although the password may be right (limits)."""
        return f"{reason}: {self._elements(user, mechanism)}"

    def login(self, user: str, mechanism: str) -> str:
        """`Login: user=<...>, ..., mpid=..., session=<...>`, logged before `enter_user`."""
        return "Login: " + self._elements(user, mechanism, mpid=os.getpid())

    def enter_user(self, user: str) -> None:
        """Logged in: the prefix becomes `imap(user)<pid><session>`, as Dovecot's imap
        process takes over from imap-login."""
        self.logged_in = True
        enter_session(LogSession.for_user("imap", user, self.session_id, self._rip, self._lip))

    def disconnected(self, reason: str, bytes_in: int, bytes_out: int) -> str:
        """The connection's last line: after login the session's counters, before it
        the login attempts (`auth failed, 2 attempts in 5 secs`)."""
        if self.logged_in:
            return f"Disconnected: {reason} in={bytes_in} out={bytes_out}"
        seconds = int(time.monotonic() - self._started)
        if self._attempts:
            what = f"auth failed, {self._attempts} attempts in {seconds} secs"
        elif self._plaintext_refused:
            what = "tried to use disallowed plaintext auth"
        else:
            what = f"no auth attempts in {seconds} secs"
        return f"Disconnected: {reason} ({what}): {self._elements(self._user, self._mechanism)}"

    def _elements(self, user: str, mechanism: str, mpid: int | None = None) -> str:
        """Dovecot's `login_log_format_elements`, empty ones left out (`user=<>` stays)."""
        parts = [f"user=<{user}>"]
        if mechanism:
            parts.append(f"method={mechanism}")
        parts += [f"rip={self._rip}", f"lip={self._lip}"]
        if mpid is not None:
            parts.append(f"mpid={mpid}")
        if self._tls:
            parts.append("TLS")
        elif self._secured:
            parts.append("secured")
        parts.append(f"session=<{self.session_id}>")
        return ", ".join(parts)
