"""`protocol lmtp|imap|lda { }` sections: per-service values, as Dovecot's protocol filters.

Where Dovecot 2.3.19's `doveconf` is installed, the per-protocol `mail_plugins`
and `plugin { }` values are compared with `doveconf -f protocol=NAME`.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.config.settings import LoadedConfig
from mailpush.dispatch.outbox_recorder import push_service_plan
from mailpush.errors import SettingError

PUSH_DEFAULT = ("push_notification", "mail_lua", "push_notification_lua")


def load(tmp_path: Path, text: str) -> LoadedConfig:
    path = tmp_path / "mailpush.conf"
    path.write_text(textwrap.dedent(text))
    return load_settings(path)


def plugins_by_service(loaded: LoadedConfig) -> dict[str, tuple[str, ...]]:
    settings = loaded.settings
    return {name: settings.for_protocol(name).mail_plugins for name in ("lmtp", "imap", "lda")}


#: Filters that win over a later global value, and a second section continuing the first.
ORDERING_CONFIG = """\
    mail_plugins = a
    protocol lmtp {
      mail_plugins = $mail_plugins b
    }
    mail_plugins = c
    protocol imap {
      mail_plugins = $mail_plugins d
      mail_plugins = $mail_plugins e
    }
    protocol lmtp {
      mail_plugins = $mail_plugins f
    }
    plugin {
      shared = global
      only_global = 1
    }
    protocol lmtp {
      plugin {
        shared = lmtp
      }
    }
    """


def test_mail_plugins_in_protocol_expand_from_the_global_value_written_so_far(
    tmp_path: Path,
) -> None:
    loaded = load(tmp_path, ORDERING_CONFIG)
    assert loaded.settings.mail_plugins == ("c",)
    assert plugins_by_service(loaded) == {
        "lmtp": ("a", "b", "f"),
        "imap": ("c", "d", "e"),
        "lda": ("c",),
    }


def test_plugin_block_inside_protocol_wins_over_the_global_one_for_that_service_only(
    tmp_path: Path,
) -> None:
    settings = load(tmp_path, ORDERING_CONFIG).settings
    assert dict(settings.for_protocol("lmtp").plugin) == {"shared": "lmtp", "only_global": "1"}
    assert dict(settings.for_protocol("imap").plugin) == {"shared": "global", "only_global": "1"}
    assert dict(settings.plugin) == {"shared": "global", "only_global": "1"}


@pytest.mark.skipif(shutil.which("doveconf") is None, reason="Dovecot's doveconf not installed")
def test_per_protocol_mail_plugins_and_plugin_values_equal_doveconf(tmp_path: Path) -> None:
    conf = tmp_path / "dovecot.conf"
    conf.write_text(textwrap.dedent(ORDERING_CONFIG) + "ssl = no\n")
    settings = load_settings(conf).settings
    for protocol in ("lmtp", "imap", "lda"):
        result = subprocess.run(
            ["doveconf", "-c", str(conf), "-f", f"protocol={protocol}", "-h", "mail_plugins"],
            capture_output=True, text=True, timeout=30, check=True,
        )
        assert settings.for_protocol(protocol).mail_plugins == tuple(result.stdout.split())
        shared = subprocess.run(
            ["doveconf", "-c", str(conf), "-f", f"protocol={protocol}", "-h", "plugin/shared"],
            capture_output=True, text=True, timeout=30, check=True,
        )
        assert settings.for_protocol(protocol).plugin["shared"] == shared.stdout.strip()


def test_mail_plugins_written_nowhere_loads_the_push_plugins_in_every_service(
    tmp_path: Path,
) -> None:
    loaded = load(tmp_path, "plugin {\n  push_notification_driver = dlog\n}\n")
    assert plugins_by_service(loaded) == {name: PUSH_DEFAULT for name in ("lmtp", "imap", "lda")}


def test_global_mail_plugins_without_push_notification_disables_pushing(tmp_path: Path) -> None:
    loaded = load(tmp_path, "mail_plugins = quota\n")
    assert plugins_by_service(loaded) == {name: ("quota",) for name in ("lmtp", "imap", "lda")}
    plan = push_service_plan(loaded.settings, {"dlog": "dlog"})
    assert not plan.pushes
    assert plan.describe() == "lmtp → (none); imap → (none); lda → (none)"


def test_mail_plugins_only_inside_protocol_lmtp_leaves_the_global_value_empty(
    tmp_path: Path,
) -> None:
    loaded = load(
        tmp_path,
        """\
        protocol lmtp {
          mail_plugins = $mail_plugins notify push_notification
        }
        """,
    )
    assert plugins_by_service(loaded) == {
        "lmtp": ("notify", "push_notification"),
        "imap": (),
        "lda": (),
    }


def test_plan_needs_mail_lua_and_push_notification_lua_for_the_lua_driver(
    tmp_path: Path,
) -> None:
    loaded = load(
        tmp_path,
        """\
        mail_plugins = $mail_plugins notify push_notification
        protocol lmtp {
          mail_plugins = $mail_plugins mail_lua push_notification_lua
        }
        """,
    )
    plan = push_service_plan(loaded.settings, {"lua": "lua", "chronos": "chronos"})
    assert plan.drivers_for("lmtp") == ("lua", "chronos")
    assert plan.drivers_for("imap") == ("chronos",)
    assert plan.describe() == "lmtp → lua, chronos; imap → chronos; lda → chronos"


def test_24_mail_plugins_block_inside_protocol_edits_the_global_list(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """\
        mail_plugins = notify quota
        protocol imap {
          mail_plugins {
            push_notification = yes
            quota = no
          }
        }
        """,
    )
    assert plugins_by_service(loaded)["imap"] == ("notify", "push_notification")
    assert plugins_by_service(loaded)["lmtp"] == ("notify", "quota")


def test_delivery_settings_inside_protocol_lda_apply_to_lda_only(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """\
        recipient_delimiter = +
        protocol lda {
          recipient_delimiter = -
          lda_mailbox_autocreate = yes
        }
        protocol imap {
          imap_max_line_length = 8k
        }
        """,
    ).settings
    assert settings.for_protocol("lda").lmtp.recipient_delimiter == "-"
    assert settings.for_protocol("lda").lmtp.mailbox_autocreate is True
    assert settings.for_protocol("lmtp").lmtp.recipient_delimiter == "+"
    assert settings.for_protocol("lmtp").lmtp.mailbox_autocreate is False
    assert settings.for_protocol("imap").imap_max_line_length == 8 * 1024
    assert settings.imap_max_line_length == 64 * 1024


def test_bad_value_inside_a_protocol_section_names_its_place(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "protocol lmtp {\n  lmtp_save_to_detail_mailbox = perhaps\n}\n")
    assert "mailpush.conf:2" in str(caught.value)


def test_unused_settings_in_protocol_sections_and_other_protocols_are_warned_about(
    tmp_path: Path,
) -> None:
    loaded = load(
        tmp_path,
        """\
        protocol lmtp {
          mail_plugins = $mail_plugins sieve
          postmaster_address = postmaster@example.org
          plugin {
            sieve = ~/.dovecot.sieve
          }
        }
        protocol pop3 {
          pop3_uidl_format = %08Xu%08Xv
        }
        """,
    )
    conf = tmp_path / "mailpush.conf"
    (warning,) = loaded.warnings
    assert f"postmaster_address ({conf}:3)" in warning
    assert f"protocol pop3 {{ }} ({conf}:8)" in warning
    assert "mail_plugins" not in warning and "sieve" not in warning


def test_push_driver_inside_a_protocol_plugin_block_is_reported_not_silently_used(
    tmp_path: Path,
) -> None:
    loaded = load(
        tmp_path,
        """\
        protocol lmtp {
          plugin {
            push_notification_driver = dlog
          }
        }
        """,
    )
    assert any(
        "push_notification_driver inside protocol lmtp" in warning
        and "mailpush.conf:3" in warning
        for warning in loaded.warnings
    )
