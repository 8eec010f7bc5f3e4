"""IMAP logins under attack: TLS-only auth, equal timing, per-IP penalty, connection limit, logs.

Every test talks to a real server over loopback with imaplib; a second client
address (127.0.0.2, also loopback on Linux) stands for "another IP".
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import socket
import ssl
import statistics
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from mailpush.auth import add_user
from mailpush.auth.penalty import AuthPenalty
from mailpush.config import load_settings
from mailpush.imap import ImapOptions, ImapServer
from mailpush.server import MailpushServer, UserDirectory
from mailpush.store import SqliteStore
from tests.conftest import free_port, imap_listener, write_config

from .conftest import PASSWORD, StackFactory


class ImapFrom(imaplib.IMAP4):
    """imaplib connecting from a chosen local address."""

    def __init__(self, host: str, port: int, source: str = "127.0.0.1") -> None:
        self._source = source
        super().__init__(host, port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, (self._source, 0))


def timed_login(port: int, user: str, password: str, source: str = "127.0.0.1") -> float:
    """Seconds one LOGIN took to be answered (either way), on a fresh connection."""
    with ImapFrom("127.0.0.1", port, source) as client:
        started = time.monotonic()
        try:
            client.login(user, password)
        except imaplib.IMAP4.error:
            pass
        return time.monotonic() - started


# --- ssl = required ---------------------------------------------------------------------


@pytest.fixture
async def tls_required_server(tmp_path: Path) -> AsyncIterator[tuple[MailpushServer, trustme.CA]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    config = write_config(
        tmp_path,
        imap_listener(free_port())
        + textwrap.dedent(
            f"""\
            protocols = imap lmtp
            ssl = required
            ssl_cert = <{cert_path}
            ssl_key = <{key_path}
            """
        ),
    )
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    yield server, ca
    await server.stop()


def imap_port(server: MailpushServer) -> int:
    return next(item.port for item in server.listeners if item.service == "imap")


async def test_ssl_required_refuses_plaintext_login_even_from_loopback(
    tls_required_server: tuple[MailpushServer, trustme.CA],
) -> None:
    server, _ = tls_required_server

    def attempt() -> tuple[tuple[str, ...], str]:
        with imaplib.IMAP4("127.0.0.1", imap_port(server)) as client:
            capabilities = client.capabilities
            try:
                client.login("alice", "secret")
            except imaplib.IMAP4.error as exc:
                return capabilities, str(exc)
            return capabilities, "logged in"

    capabilities, answer = await asyncio.to_thread(attempt)
    assert "LOGINDISABLED" in capabilities and "STARTTLS" in capabilities
    assert "AUTH=PLAIN" not in capabilities
    assert "PRIVACYREQUIRED" in answer


async def test_ssl_required_refuses_authenticate_plain_without_tls(
    tls_required_server: tuple[MailpushServer, trustme.CA],
) -> None:
    server, _ = tls_required_server

    def attempt() -> str:
        with imaplib.IMAP4("127.0.0.1", imap_port(server)) as client:
            try:
                client.authenticate("PLAIN", lambda _: b"\0alice\0secret")
            except imaplib.IMAP4.error as exc:
                return str(exc)
            return "logged in"

    assert "PRIVACYREQUIRED" in await asyncio.to_thread(attempt)


async def test_ssl_required_allows_login_after_starttls(
    tls_required_server: tuple[MailpushServer, trustme.CA],
) -> None:
    server, ca = tls_required_server
    context = ssl.create_default_context()
    ca.configure_trust(context)

    def attempt() -> tuple[str, tuple[str, ...]]:
        with imaplib.IMAP4("127.0.0.1", imap_port(server)) as client:
            client.starttls(context)
            capabilities = client.capabilities
            return client.login("alice", "secret")[0], capabilities

    status, capabilities = await asyncio.to_thread(attempt)
    assert status == "OK"
    assert "AUTH=PLAIN" in capabilities and "LOGINDISABLED" not in capabilities


# --- timing -------------------------------------------------------------------------------


async def test_a_failed_login_takes_as_long_for_an_unknown_user_as_for_a_real_one(
    tmp_path: Path, store: SqliteStore
) -> None:
    add_user(tmp_path / "users", "alice", PASSWORD, "ARGON2ID")  # write_config keeps it
    config = write_config(tmp_path)
    directory = UserDirectory(load_settings(config).settings)
    # No failure delay and so no penalty: what is left is the password check itself.
    options = ImapOptions(address="127.0.0.1", port=0, auth_failure_delay=0.0)
    imap = ImapServer(store, directory.authenticate, options)
    _, port = await imap.start()
    try:

        def samples() -> tuple[list[float], list[float]]:
            timed_login(port, "nobody", "guess")  # builds the dummy hash once
            known, unknown = [], []
            for _ in range(7):
                known.append(timed_login(port, "alice", "wrong"))
                unknown.append(timed_login(port, "nobody", "wrong"))
            return known, unknown

        known, unknown = await asyncio.to_thread(samples)
    finally:
        await imap.stop(1.0)
    # One Argon2 verification (m=64 MiB, t=3) takes tens of ms: without the dummy
    # hash the unknown user would answer that much sooner. The fastest of several
    # tries is the cost itself; the median also carries the load of a shared machine.
    fastest_known, fastest_unknown = min(known), min(unknown)
    medians = statistics.median(known), statistics.median(unknown)
    assert fastest_known > 0.02
    # Without the dummy hash the unknown user's fastest answer is a few ms against the
    # known user's tens: a ratio near 0. With it both pay one verification; the bound
    # leaves room for a busy machine's noise without letting that gap through.
    assert 0.6 * fastest_known < fastest_unknown < fastest_known / 0.6, (known, unknown)
    assert medians[1] > 0.6 * medians[0], medians


# --- penalty ------------------------------------------------------------------------------


async def test_failures_from_one_ip_wait_longer_each_time_across_connections(
    make_stack: StackFactory,
) -> None:
    # The penalty starts at auth_failure_delay: 0.15 s here, 2 s (Dovecot's) by default.
    stack = await make_stack(auth_failure_delay=0.15)

    def attempts() -> list[float]:
        times = [timed_login(stack.port, "alice", f"wrong{n}") for n in range(3)]
        times.append(timed_login(stack.port, "alice", "wrong3", source="127.0.0.2"))
        times.append(timed_login(stack.port, "alice", PASSWORD))  # waits, then succeeds
        times.append(timed_login(stack.port, "alice", "wrong4"))
        return times

    first, second, third, other_ip, success, after_success = await asyncio.to_thread(attempts)
    # Waits of 0, 0.3, 0.6 s before the check, then the 0.15 s failure delay.
    assert first < 0.45
    assert second - first > 0.18
    assert third - second > 0.18
    assert other_ip < 0.45  # another IP has its own (empty) penalty
    assert success > 0.9  # the third failure's penalty (1.2 s) applies to any login
    assert after_success < 0.45  # a success cleared it


async def test_repeating_the_same_wrong_password_does_not_raise_the_penalty(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(auth_failure_delay=0.1)

    def attempts() -> list[float]:
        return [timed_login(stack.port, "alice", "stale-password") for _ in range(4)]

    times = await asyncio.to_thread(attempts)
    # The first failure sets penalty 1 (0.2 s); repeats keep it there instead of
    # doubling to 0.4 and 0.8 s.
    assert times[3] - times[1] < 0.3, times


async def _login_answer(port: int, password: str, deadline: float) -> str | None:
    """The tagged answer to one LOGIN on a fresh connection, or None if not by `deadline`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()
        writer.write(f"a LOGIN alice {password}\r\n".encode())
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
            if not line or line.startswith(b"a "):
                return line.decode().rstrip()
    except TimeoutError:
        return None
    finally:
        writer.close()


async def test_parallel_logins_from_one_ip_each_wait_the_penalty_of_the_one_before(
    make_stack: StackFactory,
) -> None:
    # Penalty waits 0.2, 0.4, 0.8, 1.6 s: checked one after the other, 20 parallel
    # guesses get at most 4 answers in 1.5 s instead of 20 at once.
    stack = await make_stack(auth_failure_delay=0.1)
    deadline = time.monotonic() + 1.5
    answers = await asyncio.gather(
        *(_login_answer(stack.port, f"wrong{n}", deadline) for n in range(20))
    )
    failed = [a for a in answers if a is not None and "AUTHENTICATIONFAILED" in a]
    assert 1 <= len(failed) <= 4, answers


async def test_logins_beyond_the_queue_of_a_penalised_ip_are_refused_at_once(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(auth_failure_delay=0.2)
    stack.imap.penalty = AuthPenalty(initial=0.2, max_waiting=2)
    await asyncio.to_thread(timed_login, stack.port, "alice", "wrong")  # penalty 1: 0.4 s
    started = time.monotonic()
    answers = await asyncio.gather(
        *(_login_answer(stack.port, f"again{n}", started + 0.3) for n in range(6))
    )
    refused = [a for a in answers if a is not None and "[UNAVAILABLE]" in a]
    # One login is waiting out the penalty and two queue behind it; three are refused.
    assert len(refused) == 3, answers
    assert answers.count(None) == 3, answers
    # Another IP is not affected.
    assert await asyncio.to_thread(timed_login, stack.port, "alice", PASSWORD, "127.0.0.2") < 0.3


# --- logging -------------------------------------------------------------------------------


async def test_each_login_outcome_is_logged_with_user_ip_and_mechanism(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.imap")
    stack = await make_stack()

    def logins() -> None:
        timed_login(stack.port, "alice", "wrong")
        with imaplib.IMAP4("127.0.0.1", stack.port) as client:
            client.authenticate("PLAIN", lambda _: f"\0bob\0{PASSWORD}".encode())
        timed_login(stack.port, "ghost", "wrong", source="127.0.0.2")

    await asyncio.to_thread(logins)
    lines = [r.getMessage() for r in caplog.records if r.name == "mailpush.imap.connection"]
    assert any(
        "Login failed" in line
        and "user=<alice>" in line
        and "method=PLAIN" in line
        and "rip=127.0.0.1" in line
        for line in lines
    ), lines
    assert any(
        line.startswith("Login:")
        and "user=<bob>" in line
        and "method=PLAIN" in line
        and "rip=127.0.0.1" in line
        for line in lines
    ), lines
    assert any(
        "Login failed" in line and "user=<ghost>" in line and "rip=127.0.0.2" in line
        for line in lines
    ), lines
    assert not any(PASSWORD in line or "wrong" in line for line in lines)


# --- mail_max_userip_connections -------------------------------------------------------------


async def test_the_eleventh_login_of_one_user_from_one_ip_is_refused(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()

    def connections() -> tuple[str, str, str, str]:
        clients = []
        try:
            for _ in range(10):
                client = imaplib.IMAP4("127.0.0.1", stack.port)
                clients.append(client)
                client.login("alice", PASSWORD)
            eleventh = imaplib.IMAP4("127.0.0.1", stack.port)
            try:
                eleventh.login("alice", PASSWORD)
                refused = "logged in"
            except imaplib.IMAP4.error as exc:
                refused = str(exc)
            closed = eleventh.sock.recv(100) == b""  # Dovecot disconnects too
            with ImapFrom("127.0.0.1", stack.port, source="127.0.0.2") as other_ip:
                other = other_ip.login("alice", PASSWORD)[0]
            with imaplib.IMAP4("127.0.0.1", stack.port) as other_user:
                bob = other_user.login("bob", PASSWORD)[0]
            clients.pop().logout()
            with imaplib.IMAP4("127.0.0.1", stack.port) as again:
                freed = again.login("alice", PASSWORD)[0]
            return refused, f"closed={closed}", f"{other} {bob}", freed
        finally:
            for client in clients:
                client.logout()

    refused, closed, others, freed = await asyncio.to_thread(connections)
    assert refused == repr(
        b"[UNAVAILABLE] Maximum number of connections from user+IP exceeded"
        b" (mail_max_userip_connections=10)"
    )
    assert closed == "closed=True"
    assert others == "OK OK"
    assert freed == "OK"  # a closed connection gives its place back
