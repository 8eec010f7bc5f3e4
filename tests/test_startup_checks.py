"""`check_startup`: what `serve` (and `config check`) refuse before opening anything.

The end-to-end table (serve and config check as processes) is in
tests/cli/test_config_check.py; these pin down the listener rules.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.errors import SettingError
from mailpush.startup_checks import check_listeners, check_startup


def settings_with(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "mailpush.conf"
    config.write_text(f"mailpush_data_dir = {tmp_path / 'data'}\n" + textwrap.dedent(text))
    return config


def listeners(lmtp: str, imap: str, port: int = 2000) -> str:
    return f"""\
        protocols = lmtp imap
        service lmtp {{
          inet_listener lmtp {{
            address = {lmtp}
            port = {port}
          }}
        }}
        service imap-login {{
          inet_listener imap {{
            address = {imap}
            port = {port}
          }}
          inet_listener imaps {{
            port = 0
          }}
        }}
        """


@pytest.mark.parametrize(
    ("lmtp", "imap"),
    [("127.0.0.1", "127.0.0.1"), ("*", "127.0.0.1"), ("127.0.0.1", "0.0.0.0"), ("::", "::1")],
)
def test_two_listeners_on_one_port_and_overlapping_addresses_are_refused(
    tmp_path: Path, lmtp: str, imap: str
) -> None:
    config = settings_with(tmp_path, listeners(lmtp, imap))
    with pytest.raises(SettingError, match="is also where lmtp listens") as refused:
        check_listeners(load_settings(config).settings)
    assert str(refused.value).startswith(f"{config}:")


@pytest.mark.parametrize(
    ("lmtp", "imap"), [("127.0.0.1", "127.0.0.2"), ("*", "::"), ("0.0.0.0", "::1")]
)
def test_other_addresses_or_families_on_one_port_are_accepted(
    tmp_path: Path, lmtp: str, imap: str
) -> None:
    """IPv4 and IPv6 sockets never collide: asyncio binds IPv6 ones with IPV6_V6ONLY."""
    check_listeners(load_settings(settings_with(tmp_path, listeners(lmtp, imap))).settings)


def test_port_zero_never_collides(tmp_path: Path) -> None:
    config = settings_with(tmp_path, listeners("127.0.0.1", "127.0.0.1", port=0))
    check_listeners(load_settings(config).settings)


def test_check_startup_creates_nothing_on_disk(tmp_path: Path) -> None:
    config = settings_with(
        tmp_path,
        "mail_plugins = push_notification\nplugin {\n  push_notification_driver = dlog\n}\n",
    )
    plan = check_startup(load_settings(config).settings)
    assert dict(plan.drivers) == {"dlog": "dlog"}
    assert plan.tls is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mailpush.conf"]
