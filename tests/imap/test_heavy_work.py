"""The heavy-command pool's size: the cores, shared out among the serving processes.

Every worker (`mailpush_workers`, default one per core) has a pool of its own;
sized one process per core each, a 16-core machine would run 256 parsing
processes at full load. Each pool gets its share of the cores, at least two.
"""

from __future__ import annotations

import os

from mailpush.imap.heavy_work import HeavyWork


def test_a_lone_server_has_a_process_per_core_and_at_least_two() -> None:
    assert HeavyWork().size == max(2, os.cpu_count() or 2)


def test_each_of_several_workers_gets_its_share_of_the_cores_and_at_least_two() -> None:
    cores = os.cpu_count() or 2
    for sharing in (1, 2, 4, cores, 4 * cores):
        size = HeavyWork(sharing=sharing).size
        assert size == max(2, cores // sharing)
        assert sharing * size <= max(cores, 2 * sharing)


def test_an_explicit_size_is_kept() -> None:
    assert HeavyWork(workers=3, sharing=8).size == 3
