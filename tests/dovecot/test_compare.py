"""bench/compare.py: the side-by-side benchmark's report and its run against Dovecot.

The numbers themselves cannot be asserted (they depend on the machine); what
can is that ratios read "higher is better" in every row, that missed targets
are shown, and that one short run really drives both servers to a ratio line.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from bench.compare_report import Row, RowResult, ratio_line, table
from bench.dovecot_instance import dovecot_binary
from bench.http_sink import HttpSink

REPOSITORY = Path(__file__).resolve().parents[2]
RATE = Row("lmtp_8", "LMTP, 8 connections", "deliveries/s", 0.5)
LATENCY = Row("imap_idle", "IDLE latency", "ms", 0.5, latency=True)


def test_rate_ratio_is_mailpush_over_dovecot() -> None:
    result = RowResult(RATE, dovecot=(100.0, 200.0, 300.0), mailpush=(50.0, 100.0, 900.0))

    assert result.ratio == pytest.approx(0.5)
    assert result.meets_target


def test_latency_ratio_is_inverted_so_that_higher_is_better() -> None:
    result = RowResult(LATENCY, dovecot=(500.0,), mailpush=(2.0,))

    assert result.ratio == pytest.approx(250.0)


def test_latencies_below_the_floor_do_not_make_the_ratio_infinite() -> None:
    result = RowResult(LATENCY, dovecot=(500.0,), mailpush=(0.0,))

    assert result.ratio == pytest.approx(5000.0)


def test_table_marks_missed_targets_and_gives_the_reason_for_skipped_rows() -> None:
    results = [
        RowResult(RATE, dovecot=(1000.0,), mailpush=(300.0,)),
        RowResult(LATENCY, skipped="no lua driver"),
    ]

    text = table(results, rounds=1)

    assert "MISSED" in text
    assert "skipped imap_idle: no lua driver" in text


def test_ratio_line_holds_measured_rows_only() -> None:
    results = [
        RowResult(RATE, dovecot=(100.0,), mailpush=(150.0,)),
        RowResult(LATENCY, skipped="no lua driver"),
    ]

    assert ratio_line(results) == "lmtp_8=1.500"


def test_http_sink_counts_posts_per_name() -> None:
    with HttpSink() as sink:
        for name in ("dovecot", "mailpush", "mailpush"):
            request = urllib.request.Request(sink.url(10, name), data=b"user=alice")
            with urllib.request.urlopen(request) as reply:
                assert reply.status == 200

        assert (sink.count("dovecot"), sink.count("mailpush"), sink.count("other")) == (1, 2, 0)


@pytest.mark.skipif(dovecot_binary() is None, reason="Dovecot is not installed")
def test_a_short_run_measures_both_servers_and_ends_with_the_ratios() -> None:
    run = subprocess.run(
        [sys.executable, "bench/compare.py", "--only", "lmtp_1,lua_record_1", "--rounds", "1",
         "--messages", "10", "--no-chart"],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=110, check=False,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    ratios = dict(pair.split("=") for pair in run.stdout.strip().splitlines()[-1].split())
    assert float(ratios["lmtp_1"]) > 0
    assert "lua_record_1" in ratios or "skipped lua_record_1" in run.stdout
