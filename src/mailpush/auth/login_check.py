"""Checking a login name and password against the passwd-file, in the same time
whether the user exists or not.

A wrong password for a real user costs one hash verification (Argon2: a
tenth of a second); an unknown user costs none, so without care the answer's
timing tells an attacker which user names exist. `PasswdFileAuthenticator`
therefore verifies the password of an unknown (or `nologin`) user against a
dummy hash made with the scheme and cost most users' passwords have
(`PasswdFile.typical_password`, `dummy_hash_like`), off the event loop exactly
like a real verification, and throws the result away.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailpush.auth.passwd_file import PasswdFile
from mailpush.auth.password_schemes import dummy_hash_like, hash_cost, verify_password_async
from mailpush.auth.username_format import resolve_user

__all__ = ["LoginCheck", "PasswdFileAuthenticator"]


@dataclass(frozen=True, slots=True)
class LoginCheck:
    """The outcome of one login: the user name when it succeeded, else why not."""

    user: str | None
    #: "unknown user", "password mismatch" or "login disabled" (nologin); None on success.
    failure: str | None = None


class PasswdFileAuthenticator:
    """Logins against one passwd-file, with Dovecot's `scheme=` and `username_format`."""

    def __init__(self, passwd: PasswdFile, username_format: str, default_scheme: str) -> None:
        self._passwd = passwd
        self._format = username_format
        self._scheme = default_scheme
        #: hash_cost → a dummy hash of that cost; a few entries at most.
        self._dummies: dict[tuple[str, str], str] = {}

    async def authenticate(self, login: str, password: str) -> str | None:
        """The user name for a correct login and password, else None."""
        return (await self.check(login, password)).user

    async def check(self, login: str, password: str) -> LoginCheck:
        record = resolve_user(self._passwd, login, self._format)
        if record is None:
            dummy = await asyncio.to_thread(self._dummy_hash)
            if dummy is not None:
                await verify_password_async(dummy, password, self._scheme)
            return LoginCheck(None, "unknown user")
        matched = await verify_password_async(record.password, password, self._scheme)
        if not matched:
            return LoginCheck(None, "password mismatch")
        if "nologin" in record.extra_fields:
            return LoginCheck(None, "login disabled")
        return LoginCheck(record.username)

    def _dummy_hash(self) -> str | None:
        """A hash like most users' (made once per scheme and cost; runs in a thread)."""
        typical = self._passwd.typical_password(self._scheme)
        if typical is None:
            return None
        cost = hash_cost(typical, self._scheme)
        dummy = self._dummies.get(cost)
        if dummy is None:
            dummy = dummy_hash_like(typical, self._scheme)
            self._dummies[cost] = dummy
        return dummy
