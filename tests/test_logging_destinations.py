"""Where lines go and how they look: Dovecot's `log_path`, `info_log_path`,
`debug_log_path`, `log_path = syslog` with `syslog_facility`, and `log_timestamp`.

Syslog is a private UNIX datagram socket bound by the test, standing in for
/dev/log: it receives exactly the bytes a syslog daemon would.
"""

from __future__ import annotations

import contextvars
import logging
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailpush.logging_config import configure_logging
from mailpush.logs.session import LogSession, enter_session
from mailpush.logs.settings import SYSLOG, LogSettings

log = logging.getLogger("mailpush.test")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


@pytest.fixture
def syslog_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in a short directory (UNIX socket paths are short)."""
    directory = tempfile.mkdtemp(prefix="syslog-")
    path = f"{directory}/log"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(5)
    yield receiver, path
    receiver.close()
    shutil.rmtree(directory)


def lines(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def log_one_of_each_level() -> None:
    log.debug("a debug line")
    log.info("an info line")
    log.warning("a warning line")
    log.error("an error line")


def in_session(prefix: str, action: object) -> None:
    """Run `action` as a connection's task would, with its log prefix set."""
    def run() -> None:
        enter_session(LogSession(prefix))
        action()  # type: ignore[operator]

    contextvars.copy_context().run(run)


# --- files: levels split as in Dovecot --------------------------------------------------


def test_errors_and_warnings_go_to_log_path_info_and_debug_to_their_own_files(
    tmp_path: Path,
) -> None:
    errors, info, debug = tmp_path / "err.log", tmp_path / "info.log", tmp_path / "debug.log"
    configure_logging(LogSettings.of(errors, info, debug), debug=True)
    log_one_of_each_level()

    assert [line.split(": ", 1)[1] for line in lines(errors)] == [
        "Warning: a warning line", "Error: an error line",
    ]  # fmt: skip
    assert [line.split(": ", 1)[1] for line in lines(info)] == ["Info: an info line"]
    assert [line.split(": ", 1)[1] for line in lines(debug)] == ["Debug: a debug line"]


def test_info_log_path_defaults_to_log_path_and_debug_log_path_to_info_log_path(
    tmp_path: Path,
) -> None:
    errors, info = tmp_path / "err.log", tmp_path / "info.log"
    configure_logging(LogSettings.of(errors, info), debug=True)
    log_one_of_each_level()
    assert len(lines(errors)) == 2
    assert [line.split(": ", 1)[1] for line in lines(info)] == [
        "Debug: a debug line", "Info: an info line",
    ]  # fmt: skip

    everything = tmp_path / "all.log"
    configure_logging(LogSettings.of(everything))
    log_one_of_each_level()
    assert [line.split(": ", 2)[1] for line in lines(everything)] == ["Info", "Warning", "Error"]


def test_a_line_has_dovecots_shape_with_the_default_log_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "mailpush.log"
    configure_logging(LogSettings.of(path))
    in_session("imap(alice)<1><abc>", lambda: log.info("Disconnected: Logged out"))
    log.warning("outside any session")

    first, second = lines(path)
    assert re.fullmatch(
        r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d imap\(alice\)<1><abc>: Info: Disconnected: Logged out",
        first,
    ), first
    assert re.fullmatch(
        r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d mailpush\.test: Warning: outside any session", second
    ), second


def test_log_timestamp_is_a_strftime_format_with_dovecots_usecs(tmp_path: Path) -> None:
    path = tmp_path / "mailpush.log"
    configure_logging(LogSettings.of(path, timestamp="%Y-%m-%d %H:%M:%S.%{usecs} "))
    log.info("stamped")
    [line] = lines(path)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} mailpush\.test: Info: stamped", line
    ), line


def test_a_user_name_in_the_prefix_cannot_start_a_line(tmp_path: Path) -> None:
    path = tmp_path / "mailpush.log"
    configure_logging(LogSettings.of(path))
    in_session("imap(x\r\nJan 01 00:00:00 master)<1><s>", lambda: log.info("hello"))
    [line] = lines(path)
    assert "imap(x\\r\\nJan 01 00:00:00 master)<1><s>: Info: hello" in line


# --- syslog ------------------------------------------------------------------------------


def received(receiver: socket.socket, count: int) -> list[str]:
    return [receiver.recv(65536).decode("utf-8") for _ in range(count)]


def test_syslog_gets_dovecots_ident_facility_and_severity(
    syslog_socket: tuple[socket.socket, str],
) -> None:
    receiver, path = syslog_socket
    configure_logging(LogSettings.of(SYSLOG, syslog_facility="local3"), syslog_socket=path)
    in_session("imap-login", lambda: log.info("Login: user=<alice>, rip=127.0.0.1"))
    log.warning("disk nearly full\nsecret http://u:pw@host/")

    info, warning = received(receiver, 2)
    local3 = 19 * 8
    # glibc's syslog(3) shape; Dovecot leaves `Info: ` out of syslog lines, not `Warning: `.
    assert re.fullmatch(
        rf"<{local3 + 6}>[A-Z][a-z]{{2}} [ \d]\d \d\d:\d\d:\d\d dovecot: imap-login: "
        r"Login: user=<alice>, rip=127\.0\.0\.1",
        info,
    ), info
    assert warning.endswith(
        " dovecot: mailpush.test: Warning: disk nearly full\\nsecret http://u:***@host/"
    ), warning
    assert warning.startswith(f"<{local3 + 4}>")


def test_only_the_levels_routed_to_syslog_go_there(
    syslog_socket: tuple[socket.socket, str], tmp_path: Path
) -> None:
    receiver, path = syslog_socket
    errors = tmp_path / "errors.log"
    configure_logging(LogSettings.of(errors, SYSLOG), debug=True, syslog_socket=path)
    log_one_of_each_level()

    assert [m.split("dovecot: mailpush.test: ")[1] for m in received(receiver, 2)] == [
        "Debug: a debug line", "an info line",
    ]  # fmt: skip
    assert len(lines(errors)) == 2


def test_a_restarted_syslog_daemon_gets_the_next_line(
    syslog_socket: tuple[socket.socket, str],
) -> None:
    receiver, path = syslog_socket
    configure_logging(LogSettings.of(SYSLOG), syslog_socket=path)
    log.info("before")
    assert received(receiver, 1)[0].endswith("before")
    receiver.close()
    Path(path).unlink()
    restarted = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    restarted.bind(path)
    restarted.settimeout(5)
    with restarted:
        log.info("after")
        assert received(restarted, 1)[0].endswith("after")


def test_lines_a_full_syslog_socket_refuses_are_counted_not_waited_for(
    syslog_socket: tuple[socket.socket, str],
) -> None:
    """A syslog daemon that stops reading must not stall the event loop."""
    receiver, path = syslog_socket
    configure_logging(LogSettings.of(SYSLOG), syslog_socket=path)
    for n in range(200):
        log.info("line %d", n)
    queued = []
    receiver.setblocking(False)
    while True:
        try:
            queued.append(receiver.recv(65536).decode())
        except BlockingIOError:
            break
    assert 0 < len(queued) < 200
    receiver.settimeout(5)
    log.info("reading again")

    note, line = received(receiver, 2)
    lost = 200 - len(queued)
    assert f"dovecot: mailpush.logs.syslog: Warning: {lost} log lines lost: " in note
    assert note.endswith(f"{path} was full")
    assert line.endswith("reading again")


def test_a_missing_syslog_socket_falls_back_to_stderr_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "no-syslog-here")
    configure_logging(LogSettings.of(SYSLOG), syslog_socket=missing)
    log.info("still logged")

    err = capsys.readouterr().err.splitlines()
    assert "log_path = syslog and info_log_path = syslog and debug_log_path = syslog" in err[0]
    assert f"cannot send log lines to syslog at {missing}" in err[0]
    assert "start a syslog daemon" in err[0] and "logging to standard error instead" in err[0]
    assert err[1].endswith("mailpush.test: Info: still logged")
