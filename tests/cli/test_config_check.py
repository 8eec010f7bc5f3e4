"""`mailpush config check` refuses exactly what `mailpush serve` refuses, with the same words.

Both run as separate processes on the same file; the message must name the
``file:line`` to fix, and both exit 78 (EX_CONFIG), as `doveconf` users expect
of a configuration error.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.cli.cli_process import mailpush, mailpush_all
from tests.conftest import free_port, write_config

EX_CONFIG = 78


def _sieve_script(tmp_path: Path) -> str:
    script = tmp_path / "before.sieve"
    script.write_text('require ["fileinto"];\nfileinto "Spam"\nstop;\n')  # no ';' on line 2
    return str(script)


def _lua_script(tmp_path: Path) -> str:
    script = tmp_path / "push.lua"
    script.write_text("function dovecot_lua_notify_begin_txn(user)\n  return (\nend\n")
    return str(script)


#: (case, extra configuration, the line to blame (a substring of it, or the Lua script's
#: file:line), the reason's words).
#: `{tmp}`, `{lmtp_port}`, `{sieve}` and `{lua}` are filled in per test.
REFUSED = [
    (
        "unknown 2.3 driver",
        "plugin {\n  push_notification_driver = webhok:url=http://127.0.0.1:9/\n}\n",
        "webhok",
        "unknown driver 'webhok' (known: chronos, dlog, lua, ox, webhook)",
    ),
    (
        "webhook without url",
        "push_notification hook {\n  driver = webhook\n}\n",
        "push_notification hook",
        "url",
    ),
    (
        "webhook secret not in Standard Webhooks form",
        "push_notification hook {\n  driver = webhook\n  url = http://127.0.0.1:9/\n"
        "  secret = hunter2\n}\n",
        "push_notification hook",
        "whsec_",
    ),
    (
        "missing Lua script",
        "plugin {\n  push_notification_driver = lua:file={tmp}/missing.lua\n}\n",
        "missing.lua",
        "cannot read the Lua script",
    ),
    (
        "Lua script that does not compile",
        "plugin {\n  push_notification_driver = lua:file={lua}\n}\n",
        "{lua}:3",
        "unexpected symbol",
    ),
    (
        "missing TLS certificate",
        "protocols = lmtp imap\nssl = yes\nssl_cert = <{tmp}/missing.pem\n"
        "ssl_key = <{tmp}/missing.key\nservice imap-login {{\n  inet_listener imap {{\n"
        "    address = 127.0.0.1\n    port = 0\n  }}\n  inet_listener imaps {{\n"
        "    port = 0\n  }}\n}}\n",
        "ssl_cert",
        "cannot load certificate",
    ),
    (
        "global Sieve script that does not compile",
        "plugin {\n  sieve_before = {sieve}\n}\n",
        "sieve_before",
        "before.sieve:3",
    ),
    (
        "two listeners on one port",
        "mailpush_metrics_listen = 127.0.0.1:{lmtp_port}\n",
        "mailpush_metrics_listen",
        "is also where lmtp listens",
    ),
    (
        "a value of the wrong type",
        "mail_fsync = sometimes\n",
        "mail_fsync",
        "sometimes",
    ),
    (
        "a claim lease too short to renew",
        "mailpush_push_claim_lease = 1s\n",
        "mailpush_push_claim_lease",
        "mailpush_push_claim_lease: expected a lease from 3s to 1h, got '1s': too short",
    ),
]


@pytest.mark.parametrize(
    ("extra", "blamed", "reason"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_config_check_refuses_what_serve_refuses_with_the_same_message(
    tmp_path: Path, extra: str, blamed: str, reason: str
) -> None:
    lmtp_port = free_port()
    filled = extra.replace("{tmp}", str(tmp_path)).replace("{lmtp_port}", str(lmtp_port))
    filled = filled.replace("{sieve}", _sieve_script(tmp_path) if "{sieve}" in extra else "")
    filled = filled.replace("{lua}", _lua_script(tmp_path) if "{lua}" in extra else "")
    filled = filled.replace("{{", "{").replace("}}", "}")
    config = write_config(tmp_path, filled, lmtp_port=lmtp_port)
    if blamed.startswith("{lua}"):  # the script's own line, not the configuration's
        where = blamed.replace("{lua}", str(tmp_path / "push.lua"))
    else:
        line = next(
            number
            for number, text in enumerate(config.read_text().splitlines(), start=1)
            if blamed in text
        )
        where = f"{config}:{line}"

    serve, check = mailpush_all(
        ("serve", "-c", str(config)), ("config", "check", "-c", str(config))
    )

    assert check.returncode == EX_CONFIG, check.stderr
    assert serve.returncode == EX_CONFIG, serve.stderr
    assert "configuration OK" not in check.stdout
    message = check.stderr.split("configuration error: ", 1)[1].strip()
    assert f"{where}: " in message and message.index(where) <= len("Lua script "), message
    assert reason in message
    assert message in serve.stderr
    assert "Traceback" not in serve.stderr + check.stderr
    assert not (tmp_path / "data" / "mail.sqlite").exists(), "serve opened the store first"


def test_config_check_accepts_what_serve_starts_and_says_what_will_run(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "mail_plugins = $mail_plugins push_notification\n"
        "plugin {\n  push_notification_driver = dlog\n}\n",
    )
    result = mailpush("config", "check", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert f"configuration OK: {config}" in result.stdout
    assert "lmtp: 127.0.0.1:" in result.stdout
    assert "push: lmtp → dlog" in result.stdout


def test_config_dump_n_prints_only_what_differs_from_the_defaults(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "mail_fsync = optimized\nmail_debug = yes\n"
        "push_notification hook {\n  driver = webhook\n  url = https://u:pw@example.net/\n"
        "  secret = whsec_c2VjcmV0\n}\n",
    )
    changed = mailpush("config", "dump", "-n", "-c", str(config))
    assert changed.returncode == 0, changed.stderr
    assert "mail_debug = yes" in changed.stdout
    assert "mail_fsync" not in changed.stdout  # written, but the default value
    assert "imap_max_line_length" not in changed.stdout
    assert "push_notification hook {" in changed.stdout
    assert "secret = # hidden, use -P to show it" in changed.stdout
    assert "u:***@example.net" in changed.stdout and "pw@" not in changed.stdout
    shown = mailpush("config", "dump", "-n", "-P", "-c", str(config))
    assert "secret = whsec_c2VjcmV0" in shown.stdout

    everything = mailpush("config", "dump", "-c", str(config))
    assert "mail_fsync = optimized" in everything.stdout
    assert "imap_max_line_length = " in everything.stdout


def test_config_dump_n_reads_back_into_the_same_settings(tmp_path: Path) -> None:
    config = write_config(tmp_path, "mail_debug = yes\nplugin {\n  sieve_max_actions = 5\n}\n")
    dumped = tmp_path / "dumped.conf"
    dumped.write_text(mailpush("config", "dump", "-n", "-c", str(config)).stdout)
    original = mailpush("config", "check", "-c", str(config))
    again = mailpush("config", "check", "-c", str(dumped))
    assert again.returncode == 0, again.stderr
    assert again.stdout.replace(str(dumped), str(config)) == original.stdout


def test_config_dump_refuses_a_broken_file_like_serve(tmp_path: Path) -> None:
    config = write_config(tmp_path, "mail_fsync = sometimes\n")
    result = mailpush("config", "dump", "-c", str(config))
    assert result.returncode == EX_CONFIG
    assert "mail_fsync" in result.stderr and "Traceback" not in result.stderr


def test_the_2_3_driver_line_is_named_in_option_errors(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, textwrap.dedent("""\
            plugin {
              push_notification_driver = dlog
              push_notification_driver2 = webhook:
            }
            """),
    )
    line = config.read_text().splitlines().index("  push_notification_driver2 = webhook:") + 1
    result = mailpush("config", "check", "-c", str(config))
    assert result.returncode == EX_CONFIG
    assert f"{config}:{line}: webhook url:" in result.stderr
