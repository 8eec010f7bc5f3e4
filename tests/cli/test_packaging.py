"""What a packager installs: the example configuration, the systemd unit, the licence, and
`serve` telling systemd when it is ready (`Type=notify`)."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest

from mailpush.config import load_settings
from tests.cli.cli_process import COMMAND, mailpush
from tests.conftest import free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "contrib" / "mailpush.conf"
UNIT = ROOT / "contrib" / "systemd" / "mailpush.service"


def test_the_example_configuration_is_read_and_passes_config_check() -> None:
    loaded = load_settings(EXAMPLE)
    assert not any("ignoring settings" in warning for warning in loaded.warnings)
    settings = loaded.settings
    assert str(settings.data_dir) == "/var/lib/mailpush"
    assert {(item.service, item.port) for item in settings.listeners} >= {("lmtp", 24)}
    assert "push_notification" in settings.mail_plugins

    result = mailpush("config", "check", "-c", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_the_example_configuration_comments_every_common_section() -> None:
    text = EXAMPLE.read_text()
    for section in ("service lmtp", "service imap-login", "passdb", "userdb", "plugin",
                    "ssl_cert", "mailpush_data_dir", "push_notification_driver",
                    "push_notification webhook", "sieve_before", "log_path",
                    "mailpush_metrics_listen"):
        assert section in text, section


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_systemd_unit_waits_for_readiness_and_confines_mailpush() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert re.search(r"mailpush serve -c /etc/mailpush/mailpush.conf$", service["ExecStart"])
    assert "mailpush config check" in service["ExecStartPre"]
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/mailpush"
    for option in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert service[option] == "yes", option
    assert service["RestartPreventExitStatus"] == "78"  # EX_CONFIG: a restart cannot help
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    executable = shutil.which("mailpush")
    if executable is None:
        pytest.skip("mailpush is not installed as a command")
    installed = tmp_path / "mailpush.service"
    installed.write_text(UNIT.read_text().replace("/usr/local/bin/mailpush", executable))
    result = subprocess.run(["systemd-analyze", "verify", str(installed)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "mailpush.service" not in result.stderr, result.stderr


def test_serve_sends_ready_to_systemd_once_it_accepts_connections(tmp_path: Path) -> None:
    lmtp_port = free_port()
    config = write_config(tmp_path, lmtp_port=lmtp_port)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(30)
        server = subprocess.Popen(
            [*COMMAND, "serve", "-c", str(config)],
            env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            state = notify.recv(4096).decode()
            assert "READY=1" in state.splitlines()
            assert f"MAINPID={server.pid}" in state.splitlines()
            with socket.create_connection(("127.0.0.1", lmtp_port), timeout=5) as lmtp:
                assert lmtp.recv(100).startswith(b"220 ")
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
        finally:
            server.kill()
            server.wait()


def test_serve_without_systemd_needs_no_notify_socket(tmp_path: Path) -> None:
    """No $NOTIFY_SOCKET (a terminal, a container): nothing is sent, nothing fails."""
    config = write_config(tmp_path)
    server = subprocess.Popen(
        [*COMMAND, "serve", "-c", str(config)],
        env={key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert server.stderr is not None
        for line in server.stderr:
            if "mailpush ready" in line:
                break
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()


def test_the_licence_is_the_mit_licence_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == {"text": "MIT"}
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in licence
    assert re.search(r"Copyright \(c\) \d{4} \S", licence)


FAIL2BAN_JAIL = ROOT / "contrib" / "fail2ban" / "jail.d" / "mailpush.conf"


@pytest.mark.skipif(
    shutil.which("fail2ban-client") is None or not Path("/etc/fail2ban/jail.conf").exists(),
    reason="needs Debian's fail2ban (apt-get install fail2ban) to read the jail",
)
def test_the_fail2ban_jail_loads_with_the_stock_dovecot_filter(tmp_path: Path) -> None:
    """Both variants of contrib/fail2ban's jail, as fail2ban itself reads them."""
    confdir = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", confdir)
    # fail2ban leaves out a log file that does not exist: point the jail at one that does.
    log = tmp_path / "mailpush.log"
    log.touch()
    jail = FAIL2BAN_JAIL.read_text().replace("enabled  = false", "enabled  = true")
    assert "logpath  = /var/log/mailpush/mailpush.log" in jail
    jail = jail.replace("/var/log/mailpush/mailpush.log", str(log))
    (confdir / "jail.d" / "mailpush.conf").write_text(jail)
    dumped = subprocess.run(
        ["fail2ban-client", "-c", str(confdir), "-d"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert dumped.returncode == 0, dumped.stderr
    lines = dumped.stdout.splitlines()
    assert "['add', 'mailpush', 'auto']" in lines
    assert f"['set', 'mailpush', 'addlogpath', '{log}', 'head']" in lines
    assert "['add', 'mailpush-journal', 'systemd']" in lines
    unit_match = "'addjournalmatch', '_SYSTEMD_UNIT=mailpush.service'"
    assert f"['set', 'mailpush-journal', {unit_match}]" in lines
    # The stock filter's failure line, the one mailpush writes, is what the jail counts.
    assert any(
        line.startswith("['multi-set', 'mailpush', 'addfailregex'") and "auth failed" in line
        for line in lines
    )
