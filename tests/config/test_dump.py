"""`dump_config`: the effective configuration as `doveconf` prints it."""

from __future__ import annotations

import textwrap

from mailpush.config import parse_text
from mailpush.config.dump import HIDDEN, dump_config

FILE = textwrap.dedent(
    """\
    base = /srv/mail
    mail_debug = no
    mail_debug = yes
    mailpush_data_dir = $base/data
    mail_fsync = optimized
    protocol lmtp {
      mail_plugins = $mail_plugins sieve
    }
    plugin {
      push_notification_driver = ox:url=https://admin:letmein@ox.example/notify
      sieve_before = /etc/sieve/before.sieve
    }
    push_notification hook {
      driver = webhook
      secret = whsec_abc
    }
    """
)


def test_n_shows_the_winning_values_that_differ_from_the_defaults_in_file_order() -> None:
    text = dump_config(parse_text(FILE, "x.conf"), changed_only=True)
    lines = text.splitlines()
    assert "mail_debug = yes" in lines and "mail_debug = no" not in lines
    assert "mailpush_data_dir = /srv/mail/data" in lines  # $variables expanded
    assert not any(line.startswith("mail_fsync") for line in lines)  # the default
    assert text.index("protocol lmtp {") < text.index("plugin {")
    assert "  sieve_before = /etc/sieve/before.sieve" in lines


def test_secrets_and_url_passwords_are_hidden_unless_asked_for() -> None:
    hidden = dump_config(parse_text(FILE, "x.conf"), changed_only=True)
    assert f"  secret = {HIDDEN}" in hidden.splitlines()
    assert "https://admin:***@ox.example/notify" in hidden and "letmein" not in hidden
    shown = dump_config(parse_text(FILE, "x.conf"), changed_only=True, show_secrets=True)
    assert "  secret = whsec_abc" in shown.splitlines() and "letmein" in shown


def test_without_n_every_declared_setting_is_shown_at_its_value() -> None:
    lines = dump_config(parse_text(FILE, "x.conf"), changed_only=False).splitlines()
    assert "mail_fsync = optimized" in lines
    assert "mail_debug = yes" in lines
    assert any(line.startswith("imap_max_line_length = ") for line in lines)
    assert "service lmtp {" in lines
