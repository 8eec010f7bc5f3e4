"""`/metrics` of several workers: worker 0 asks the others and answers for all.

Each worker counts what it served (its LMTP deliveries, IMAP commands, logins,
commits) in its own registry; a scrape of worker 0 alone would show a fraction
that shifts with how the kernel spread the connections. So worker 0 asks every
other worker's control socket for its metrics (`{"command": "metrics"}`),
labels each worker's samples `worker="N"`, and renders one exposition in which
each metric family appears once with every worker's series, as Prometheus
requires. Queries add the workers up: `sum without (worker) (rate(…))`.

A worker that does not answer within `WORKER_METRICS_TIMEOUT` (being
restarted) is left out of that scrape, and the log says so at debug level:
its counters restart from zero with it anyway, which Prometheus' `rate`
already treats as a counter reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from .control_socket import ask
from .errors import ServiceError
from .worker_role import worker_control_path

__all__ = ["WORKER_LABEL", "merge_workers", "workers_exposition"]

log = logging.getLogger(__name__)

#: The label each worker's samples carry.
WORKER_LABEL = "worker"
#: Seconds a worker gets to answer a scrape; Prometheus' own timeout is 10 s by default.
WORKER_METRICS_TIMEOUT = 3.0


async def workers_exposition(registry: CollectorRegistry, data_dir: Path, workers: int) -> bytes:
    """Worker 0's `registry` and the other workers' metrics, as one exposition."""
    texts = await asyncio.gather(
        *(_worker_text(worker_control_path(data_dir, index)) for index in range(1, workers))
    )
    families: list[tuple[int, Iterable[Metric]]] = [(0, registry.collect())]
    for index, text in enumerate(texts, start=1):
        if text is not None:
            families.append((index, text_string_to_metric_families(text)))
    return generate_latest(_Merged(merge_workers(families)))


async def _worker_text(path: Path) -> str | None:
    try:
        answer = await ask(path, {"command": "metrics"}, WORKER_METRICS_TIMEOUT)
    except ServiceError as exc:
        log.debug("metrics: left out of this scrape: %s", exc)
        return None
    text = answer.get("text")
    return text if answer.get("ok") and isinstance(text, str) else None


def merge_workers(per_worker: Sequence[tuple[int, Iterable[Metric]]]) -> list[Metric]:
    """One family per name, holding every worker's samples labelled with its index."""
    merged: dict[str, Metric] = {}
    for index, families in per_worker:
        label = str(index)
        for family in families:
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            into.samples.extend(
                Sample(s.name, {**s.labels, WORKER_LABEL: label}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            )
    return list(merged.values())


class _Merged:
    """A collector of ready-made families, as `generate_latest` takes one."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
