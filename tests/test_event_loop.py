"""`mailpush_event_loop`: `serve` runs on uvloop unless told asyncio (event_loop.py).

The in-process servers of the other tests run on pytest's asyncio loop, so
what uvloop changes is shown here with the real command: a worker process
on each loop serves LMTP, IMAP, IMAP over implicit TLS and STARTTLS (the
IMAP connection's transport came from uvloop and once failed an isinstance
check at the first byte: LOGIN got a closed connection).
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
import sys
from pathlib import Path

import pytest
import trustme

from mailpush.config import load_settings
from mailpush.errors import ConfigError
from mailpush.event_loop import SWITCH_INTERVAL, loop_factory, run, running_loop_name

from .conftest import free_port, write_config
from .test_server_imap import tls_settings
from .test_workers import Served, served  # noqa: F401  (a fixture)

MESSAGE = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: loop\r\n\r\nbody\r\n"


def test_uvloop_is_the_default(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path)).settings.event_loop == "uvloop"


def test_asyncio_can_be_chosen(tmp_path: Path) -> None:
    config = write_config(tmp_path, "mailpush_event_loop = asyncio\n")
    assert load_settings(config).settings.event_loop == "asyncio"


def test_another_value_names_the_setting_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mailpush_event_loop") as caught:
        load_settings(write_config(tmp_path, "mailpush_event_loop = trio\n"))
    assert "uvloop" in str(caught.value) and "asyncio" in str(caught.value)


def test_each_kind_runs_a_coroutine_on_that_loop() -> None:
    async def which() -> str:
        return running_loop_name()

    assert run(which(), "uvloop") == "uvloop"
    assert run(which(), "asyncio") == "asyncio"


def test_the_server_switches_threads_every_half_millisecond_and_gives_the_default_back() -> None:
    """The store writer thread waits for the GIL while holding the writers' lock."""

    async def interval() -> float:
        return sys.getswitchinterval()

    before = sys.getswitchinterval()
    assert run(interval(), "uvloop") == SWITCH_INTERVAL == 0.0005
    assert sys.getswitchinterval() == before


def test_a_missing_uvloop_is_a_configuration_error_naming_the_way_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an absent package looks like

    async def never() -> None:
        raise AssertionError("must not run")

    with pytest.raises(ConfigError, match="mailpush_event_loop = asyncio"):
        loop_factory("uvloop")
    with pytest.raises(ConfigError, match="cannot be imported"):
        run(never(), "uvloop")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT workers")
@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
async def test_each_loop_serves_lmtp_imap_imaps_and_starttls(
    tmp_path: Path, served: list[Served], kind: str  # noqa: F811  (the fixture)
) -> None:
    ca = trustme.CA()
    imaps_port = free_port()
    extra = (
        f"mailpush_event_loop = {kind}\n"
        + tls_settings(tmp_path, ca)
        + f"service imap-login {{\n  inet_listener imaps {{\n    address = 127.0.0.1\n"
        f"    port = {imaps_port}\n  }}\n}}\n"
    )
    server = Served(tmp_path, extra)
    served.append(server)
    await server.start()
    context = ssl.create_default_context()
    ca.configure_trust(context)

    def exchange() -> list[str]:
        with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:
            lmtp.sendmail("a@example.org", ["alice"], MESSAGE)
        answers = []
        with imaplib.IMAP4("127.0.0.1", server.imap_port) as imap:
            imap.starttls(context)
            answers.append(imap.login("alice", "secret")[0])
            answers.append(imap.select("INBOX")[1][0].decode())
            imap.logout()
        with imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=context) as imaps:
            answers.append(imaps.login("alice", "secret")[0])
            imaps.logout()
        return answers

    assert await asyncio.to_thread(exchange) == ["OK", "1", "OK"]
    log = server.log_text()
    assert log.count(f"event loop: {kind}") == 2, log  # one line per worker
