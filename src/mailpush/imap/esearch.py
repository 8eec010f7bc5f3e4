"""ESEARCH (RFC 4731) result options and the `* ESEARCH` response SEARCH and SORT share.

`SEARCH RETURN (MIN MAX ALL COUNT) ...` asks for a summary instead of
every number; `RETURN ()` means ALL. ESORT (RFC 5267) puts the same options
on SORT, where MIN and MAX are the first and last message in sort order and
ALL keeps that order. Dovecot 2.3 writes the items in a fixed order (MIN,
MAX, ALL, COUNT) whatever the order asked, leaves out MIN, MAX and ALL when
nothing matched, and writes COUNT 0. SAVE (SEARCHRES) is not offered: it is
refused like any unknown option. SEARCH's CONTEXT=SEARCH options (PARTIAL,
UPDATE) are read in search_context.py; PARTIAL's answer is written here,
after ALL and before COUNT, where Dovecot writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .parser import CommandSyntaxError, Tokenizer

__all__ = [
    "RESULT_OPTIONS",
    "esearch_response",
    "format_number_list",
    "open_return_options",
    "parse_return_options",
]

#: The options a client may ask for, in the order the response lists them.
RESULT_OPTIONS = ("MIN", "MAX", "ALL", "COUNT")
_MIN_MAX = frozenset(("MIN", "MAX"))


def open_return_options(tokens: Tokenizer) -> bool:
    """Read `RETURN (` at the tokenizer: False (and nothing read) when there is no
    `RETURN `, CommandSyntaxError when its parenthesis is missing. SEARCH and SORT
    both start their return options so; what the list may hold differs."""
    if tokens.data[tokens.pos : tokens.pos + 7].upper() != b"RETURN ":
        return False
    tokens.pos += 7
    if not tokens.open_paren():
        raise CommandSyntaxError("Invalid RETURN options")
    return True


def parse_return_options(tokens: Tokenizer) -> frozenset[str] | None:
    """`RETURN (options) ` at the tokenizer, or None (and nothing read) when there is none."""
    if not open_return_options(tokens):
        return None
    wanted: set[str] = set()
    if not tokens.close_paren():
        while True:
            option = tokens.atom("RETURN option").upper()
            if option not in RESULT_OPTIONS:
                raise CommandSyntaxError("Unknown SEARCH return option")
            wanted.add(option)
            if tokens.close_paren():
                break
            tokens.space()
    tokens.space()
    return frozenset(wanted or {"ALL"})


def esearch_response(
    tag: str,
    by_uid: bool,
    numbers: Sequence[int],
    wanted: frozenset[str],
    modseqs: Mapping[int, int] | None = None,
    partial: tuple[int, int] | None = None,
    update: bool = False,
) -> str:
    """`* ESEARCH (TAG "a1") [UID] ...` for `numbers` in result order (ascending for SEARCH).

    A MODSEQ search (`modseqs`: number → modseq) ends with the highest modseq of
    the messages returned (RFC 4731 §3.2): only the MIN and MAX message when
    nothing else is asked for, every match with ALL or COUNT (imaptest's
    esearch-condstore checks both, as Dovecot answers). `partial` (CONTEXT=SEARCH) asks for
    `PARTIAL (m:n set)`: the m-th to n-th number, NIL when there are none; with it, or
    with `update`, every match counts towards MODSEQ, as in Dovecot."""
    minmax_only = partial is None and not update and bool(wanted) and wanted <= _MIN_MAX
    modseq = (
        _returned_modseq(numbers, wanted, modseqs, minmax_only) if modseqs and numbers else 0
    )
    parts = [f'* ESEARCH (TAG "{tag}")']
    if by_uid:
        parts.append("UID")
    if numbers:
        if "MIN" in wanted:
            parts.append(f"MIN {numbers[0]}")
        if "MAX" in wanted:
            parts.append(f"MAX {numbers[-1]}")
        if "ALL" in wanted:
            parts.append(f"ALL {format_number_list(numbers)}")
    if partial is not None:
        first, last = partial
        chosen = numbers[first - 1 : last]
        parts.append(f"PARTIAL ({first}:{last} {format_number_list(chosen) if chosen else 'NIL'})")
    if "COUNT" in wanted:
        parts.append(f"COUNT {len(numbers)}")
    if modseq and numbers:
        parts.append(f"MODSEQ {modseq}")
    return " ".join(parts)


def _returned_modseq(
    numbers: Sequence[int], wanted: frozenset[str], modseqs: Mapping[int, int], minmax_only: bool
) -> int:
    if not minmax_only:
        returned: Sequence[int] = numbers
    else:
        returned = [numbers[0]] * ("MIN" in wanted) + [numbers[-1]] * ("MAX" in wanted)
    return max((modseqs.get(n, 0) for n in returned), default=0)


def format_number_list(numbers: Sequence[int]) -> str:
    """A sequence-set keeping the given order: only ascending consecutive runs become `a:b`."""
    out: list[str] = []
    start = previous = numbers[0]
    for number in numbers[1:]:
        if number == previous + 1:
            previous = number
            continue
        out.append(f"{start}:{previous}" if previous != start else str(start))
        start = previous = number
    out.append(f"{start}:{previous}" if previous != start else str(start))
    return ",".join(out)
