"""SEARCH's RETURN options under CONTEXT=SEARCH (RFC 5267 §4): PARTIAL and UPDATE beside ESEARCH's.

`RETURN (PARTIAL m:n)` asks for the m-th to n-th match, counted from 1 in the
result (`n:m` is turned round), answered `PARTIAL (m:n set)` or
`PARTIAL (m:n NIL)` (esearch.py writes it). `RETURN (UPDATE)` asks the
server to keep the client's copy of the result current (search_updates.py).
What is accepted and refused follows Dovecot 2.3.19 (its imap-search.c,
checked against a running instance, tests/imap/test_search_context.py):

- options are read left to right: a second UPDATE, a second PARTIAL, a
  PARTIAL without a range (`PARTIAL)`, `PARTIAL "1:2"`) or with a broken one
  (`1`, `1:*`, `0:1`, `1:2,3:4`, past 4294967295) are BAD at once;
- then an UPDATE under a tag that already follows updates, then PARTIAL with
  ALL, are BAD;
- `CONTEXT` is accepted and means nothing; with no option at all (`RETURN ()`,
  `RETURN (CONTEXT)`) the answer is ALL, while UPDATE or PARTIAL alone
  return only what they name (`RETURN (UPDATE)` answers `* ESEARCH (TAG "x")`).

Not offered: SAVE (SEARCHRES), refused as an unknown option; Dovecot's
`UPDATE (fetch-att)` extension (a FETCH of each added message), refused.
Error texts are Dovecot's, with the full stop it ends every tagged reply with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .esearch import RESULT_OPTIONS, open_return_options
from .parser import CommandSyntaxError, Tokenizer

__all__ = ["SearchReturns", "parse_search_returns"]

_RANGE = re.compile(rb"(\d+):(\d+)")
#: What ends a PARTIAL range: the next option, the list's end, or a non-atom.
_RANGE_END = frozenset(b' ()"{')
_MAX_POSITION = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SearchReturns:
    """What `SEARCH RETURN (...)` asked for."""

    #: Of MIN, MAX, ALL and COUNT (esearch.RESULT_OPTIONS).
    options: frozenset[str]
    #: PARTIAL's first and last position (1-based, first <= last).
    partial: tuple[int, int] | None = None
    #: UPDATE: follow the result as the mailbox changes.
    update: bool = False


def parse_search_returns(tokens: Tokenizer, tag_follows_updates: bool) -> SearchReturns | None:
    """`RETURN (options) ` at the tokenizer, or None (and nothing read) when there is none.

    `tag_follows_updates`: the command's tag already names an UPDATE search, which a
    second UPDATE under it may not replace (Dovecot's "Duplicate search update tag.").
    """
    if not open_return_options(tokens):
        return None
    wanted: set[str] = set()
    partial: tuple[int, int] | None = None
    update = False
    if not tokens.close_paren():
        while True:
            try:
                option = tokens.atom("RETURN option").upper()
            except CommandSyntaxError:
                raise CommandSyntaxError("SEARCH return options contain non-atoms.") from None
            if option in RESULT_OPTIONS:
                wanted.add(option)
            elif option == "CONTEXT":
                pass  # RFC 5267 §4.1: a hint that UPDATE or CONTEXT-aware use may follow
            elif option == "UPDATE":
                if update:
                    raise CommandSyntaxError("SEARCH return options have duplicate UPDATE.")
                update = True
                if tokens.peek_is(b" ("):
                    raise CommandSyntaxError(
                        "SEARCH UPDATE with a fetch-att list is not supported."
                    )
            elif option == "PARTIAL":
                if partial is not None:
                    raise CommandSyntaxError("PARTIAL can be used only once.")
                partial = _partial_range(tokens)
            else:
                raise CommandSyntaxError("Unknown SEARCH return option.")
            if tokens.close_paren():
                break
            tokens.space()
    tokens.space()
    if update and tag_follows_updates:
        raise CommandSyntaxError("Duplicate search update tag.")
    if partial is not None and "ALL" in wanted:
        raise CommandSyntaxError("PARTIAL conflicts with ALL.")
    if not wanted and partial is None and not update:
        wanted.add("ALL")
    return SearchReturns(frozenset(wanted), partial, update)


def _partial_range(tokens: Tokenizer) -> tuple[int, int]:
    """PARTIAL's `m:n`, both positions from 1 to 4294967295, in ascending order."""
    data = tokens.data
    start = tokens.pos + 1
    end = start
    if tokens.peek_is(b" "):
        while end < len(data) and data[end] not in _RANGE_END:
            end += 1
    if end == start:
        raise CommandSyntaxError("PARTIAL range missing.")
    tokens.pos = end
    match = _RANGE.fullmatch(data, start, end)
    if match is None:
        raise CommandSyntaxError("PARTIAL range broken.")
    first, last = int(match.group(1)), int(match.group(2))
    if not 0 < first <= _MAX_POSITION or not 0 < last <= _MAX_POSITION:
        raise CommandSyntaxError("PARTIAL range broken.")
    return (first, last) if first <= last else (last, first)
