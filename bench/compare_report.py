"""What bench/compare.py prints and draws: rows, their medians, ratios and targets.

Every ratio reads "higher is better for mailpush": rates are mailpush/Dovecot,
latencies are inverted (Dovecot/mailpush), so one chart and one line of
`key=value` pairs can hold them all.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Row", "RowResult", "chart", "ratio_line", "table"]

#: Latencies below this are within measurement noise (the EXISTS can even reach
#: the client before the LMTP reply does); ratios use at least this much.
LATENCY_FLOOR_MS = 0.1


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    #: Least acceptable ratio (issue 7).
    target: float
    latency: bool = False


@dataclass(frozen=True)
class RowResult:
    row: Row
    dovecot: tuple[float, ...] = ()
    mailpush: tuple[float, ...] = ()
    #: Why the row was not measured; None when it was.
    skipped: str | None = None

    @property
    def dovecot_median(self) -> float:
        return statistics.median(self.dovecot)

    @property
    def mailpush_median(self) -> float:
        return statistics.median(self.mailpush)

    @property
    def ratio(self) -> float:
        dovecot, mailpush = self.dovecot_median, self.mailpush_median
        if self.row.latency:
            return max(dovecot, LATENCY_FLOOR_MS) / max(mailpush, LATENCY_FLOOR_MS)
        return mailpush / dovecot

    @property
    def meets_target(self) -> bool:
        return self.ratio >= self.row.target


def table(results: Sequence[RowResult], rounds: int) -> str:
    header = ("workload", "unit", "Dovecot", "mailpush", "ratio", "target")
    body: list[tuple[str, ...]] = []
    for result in results:
        row = result.row
        if result.skipped is not None:
            body.append((row.label, row.unit, "-", "-", "skipped", f">= {row.target:g}"))
            continue
        verdict = "met" if result.meets_target else "MISSED"
        body.append((
            row.label,
            row.unit,
            _number(result.dovecot_median),
            _number(result.mailpush_median),
            f"{result.ratio:.2f}",
            f">= {row.target:g} {verdict}",
        ))
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    right = {2, 3, 4}

    def format_line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [format_line(header), "  ".join("-" * width for width in widths)]
    lines += [format_line(line) for line in body]
    lines.append(
        f"Medians over {rounds} rounds per server. ratio = mailpush/Dovecot, higher is better "
        "for mailpush; for latencies (ms) it is inverted, Dovecot/mailpush."
    )
    lines += [f"skipped {result.row.key}: {result.skipped}"
              for result in results if result.skipped is not None]
    return "\n".join(lines)


def ratio_line(results: Sequence[RowResult]) -> str:
    """`key=ratio` for every measured row; skipped rows are left out."""
    return " ".join(f"{result.row.key}={result.ratio:.3f}"
                    for result in results if result.skipped is None)


def chart(results: Sequence[RowResult], path: Path, title: str) -> None:
    """A horizontal bar per measured row (log scale), its target marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    measured = [result for result in results if result.skipped is None]
    labels = [result.row.label + (" (inverted)" if result.row.latency else "")
              for result in measured]
    ratios = [result.ratio for result in measured]
    targets = [result.row.target for result in measured]
    colours = ["tab:green" if result.meets_target else "tab:red" for result in measured]
    figure, axes = pyplot.subplots(figsize=(10, 0.45 * len(measured) + 1.6))
    positions = list(range(len(measured)))[::-1]
    axes.barh(positions, ratios, color=colours)
    axes.scatter(targets, positions, marker="|", s=300, color="black", zorder=3)
    for position, ratio in zip(positions, ratios, strict=True):
        axes.annotate(f"{ratio:.2f}", (ratio, position), xytext=(4, 0),
                      textcoords="offset points", va="center", fontsize=8)
    axes.axvline(1.0, color="grey", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlim(min(ratios + targets) / 2, max(ratios + targets) * 4)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.set_xlabel("mailpush / Dovecot, higher is better (latency inverted); log scale; "
                    "| = target; red = target missed", fontsize=8)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
