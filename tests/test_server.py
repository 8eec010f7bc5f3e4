"""The `mailpush serve` process: start-up, clean stop, and durability across SIGKILL."""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, write_config

MESSAGE = b"From: a@example.net\r\nSubject: durable\r\n\r\nkeep me\r\n"


def start_serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailpush.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early: {log.read_text()}")
        try:
            with smtplib.LMTP("127.0.0.1", port) as client:
                client.noop()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"server did not listen on {port}: {log.read_text()}")


def deliver(port: int, rcpt: str) -> tuple[int, bytes]:
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo("test")
        client.mail("a@example.net")
        client.rcpt(rcpt)
        return client.data(MESSAGE)


def stored_messages(data_dir: Path, user: str) -> list[bytes]:
    conn = sqlite3.connect(data_dir / "mail.sqlite")
    try:
        return [
            bytes(row[0])
            for row in conn.execute(
                "SELECT b.raw FROM messages m JOIN bodies b ON b.id = m.body_id"
                " JOIN mailboxes x ON x.id = m.mailbox_id JOIN users u ON u.id = x.user_id"
                " WHERE u.name = ? ORDER BY m.uid",
                (user,),
            )
        ]
    finally:
        conn.close()


def test_acknowledged_mail_survives_sigkill(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, lmtp_port=port)
    log = tmp_path / "serve.log"
    proc = start_serve(config, log)
    try:
        wait_for_port(port, proc, log)
        codes = [deliver(port, "alice")[0] for _ in range(20)]
        assert codes == [250] * 20
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # A second server on the same data directory finds every acknowledged mail.
    proc = start_serve(config, log)
    try:
        wait_for_port(port, proc, log)
        assert deliver(port, "alice")[0] == 250
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    assert stored_messages(tmp_path / "data", "alice") == [MESSAGE] * 21


def test_sigterm_stops_cleanly_and_logs_listeners(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, lmtp_port=port)
    log = tmp_path / "serve.log"
    proc = start_serve(config, log)
    try:
        wait_for_port(port, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    text = log.read_text()
    assert f"lmtp: listening on 127.0.0.1:{port}" in text
    assert "stopped" in text


def test_malformed_config_stops_startup_naming_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.conf"
    config.write_text("protocols = lmtp\nservice lmtp {\n  inet_listener lmtp {\n    port = 24\n")
    result = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    # The innermost section that is never closed, where it was opened.
    assert f"{config}:3: section 'inet_listener lmtp {{' opened here is never closed" in (
        result.stderr
    )


def test_bad_setting_value_names_the_setting(tmp_path: Path) -> None:
    config = write_config(tmp_path, "lmtp_save_to_detail_mailbox = perhaps\n")
    result = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "lmtp_save_to_detail_mailbox" in result.stderr
    assert "perhaps" in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path, lmtp_port=port)
        result = subprocess.run(
            [sys.executable, "-m", "mailpush.cli", "serve", "--config", str(config)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serve_without_config_uses_embedded_defaults(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpush.cli", "serve"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "mailpush-data" / "mail.sqlite").exists():
            assert time.monotonic() < deadline, "no data dir created"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert b"built-in defaults" in err
