"""`mailpush_push_claim_lease`: how long a dispatcher's claims hold without renewal.

A duration like the other `mailpush_push_*` settings, bounded: the dispatcher
renews every third of it, so a lease too short is lost to a renewal a moment
late (and its pushes sent twice), and one absurdly long holds a dead node's
pushes back for hours (docs/postgresql.md#dispatch-across-nodes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.config.schema import PUSH_CLAIM_LEASE
from mailpush.errors import SettingError
from mailpush.store.outbox_claimants import CLAIM_LEASE


def lease_of(tmp_path: Path, value: str) -> float:
    path = tmp_path / "mailpush.conf"
    path.write_text(f"mail_debug = no\nmailpush_push_claim_lease = {value}\n", encoding="utf-8")
    return load_settings(path).settings.push.claim_lease


def test_the_default_is_the_outbox_s_own_default_of_30_seconds() -> None:
    assert load_settings(None).settings.push.claim_lease == CLAIM_LEASE == 30.0
    assert PUSH_CLAIM_LEASE.default == "30s"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3s", 3.0), ("10", 10.0), ("1.5m", 90.0), ("2 mins", 120.0), ("1h", 3600.0)],
)
def test_a_lease_from_3_seconds_to_an_hour_is_taken(
    tmp_path: Path, text: str, seconds: float
) -> None:
    assert lease_of(tmp_path, text) == seconds


@pytest.mark.parametrize("text", ["2s", "2999ms", "0"])
def test_a_lease_too_short_to_renew_is_refused_naming_the_setting_and_line(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(SettingError) as caught:
        lease_of(tmp_path, text)
    assert caught.value.setting == "mailpush_push_claim_lease"
    assert caught.value.where == f"{tmp_path / 'mailpush.conf'}:2"
    assert caught.value.reason.startswith(f"expected a lease from 3s to 1h, got {text!r}: ")
    assert "too short to renew safely" in caught.value.reason


@pytest.mark.parametrize("text", ["61m", "2h", "1d"])
def test_a_lease_longer_than_an_hour_is_refused_saying_what_it_would_cost(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(SettingError) as caught:
        lease_of(tmp_path, text)
    assert str(caught.value) == (
        f"{tmp_path / 'mailpush.conf'}:2: mailpush_push_claim_lease: expected a lease from 3s"
        f" to 1h, got {text!r}: a dead node's claimed pushes would wait that long before"
        " another node sends them"
    )


def test_a_lease_that_is_no_duration_gets_the_duration_message(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        lease_of(tmp_path, "soon")
    assert caught.value.setting == "mailpush_push_claim_lease"
    assert "expected a duration such as 30s" in caught.value.reason
