"""LIST and LSUB patterns (RFC 3501 §6.3.8) matched in time linear in the name.

`*` matches any run of characters, `%` any run that holds no hierarchy
separator. Translated to a regular expression (`.*`, `[^/]*`) a pattern
backtracks: against a mailbox named 100 × `a`, `*a*a*a*a*a*ab` kept the event
loop busy for ~10 s and every further `*` multiplied that by ~15. Here a
pattern with `%` is a small NFA whose states (positions in the pattern) are
the bits of one integer, all advanced together once per character of the
name (Thompson's construction, with bit-parallel state sets): one pass over
the name whatever the pattern, each step a few integer operations on
`len(pattern)` bits. A pattern with only `*` needs no NFA: the literal runs
between the stars are found left to right with `str.find`, and taking each
at its leftmost place never loses a match.

LIST hands names over sorted, so a name mostly shares its start with the one
before (`a/b/c` after `a/b`). The NFA keeps the state sets it went through for
the previous name and resumes after the shared start, so a deep hierarchy
(10,000 mailboxes 32 levels deep list as 320,000 names) costs about its
distinct characters, not the sum of every name's length.

Cheap checks run first: a pattern without wildcards is an equality test, `*`
alone matches everything, and a name shorter than the pattern's literal
characters, not starting and ending with its literal prefix and suffix, or
with too few separators (with no `*`: another number of them than the
pattern) is refused before the NFA runs; `prefix*` and `prefix%` need no NFA
at all. A pattern longer than any mailbox name can be thus costs nothing per
mailbox, and `%/%` does not walk every name of a deep hierarchy.

INBOX is case-insensitive (RFC 3501 §5.1): a pattern starting with `inbox`
as a whole first level is matched as `INBOX`, the store's canonical spelling.
"""

from __future__ import annotations

from ..store.mailbox_names import INBOX, SEPARATOR

__all__ = ["ListPattern"]

_STAR = "*"
_PERCENT = "%"
_WILDCARDS = frozenset((_STAR, _PERCENT))


class ListPattern:
    """One compiled LIST pattern (reference already joined); `matches` tests a name."""

    __slots__ = (
        "pattern",
        "_accept",
        "_exact",
        "_literal_count",
        "_literal_masks",
        "_match_all",
        "_percent",
        "_prefix",
        "_segments",
        "_separators",
        "_star",
        "_start",
        "_suffix",
        "_tail",
        "_trail",
        "_trail_name",
        "_wild",
    )

    def __init__(self, pattern: str) -> None:
        if pattern[:5].upper() == INBOX and (len(pattern) == 5 or pattern[5] == SEPARATOR):
            pattern = INBOX + pattern[5:]
        #: The pattern with every run of wildcards folded into one (`%*` is `*`).
        self.pattern = _fold_wildcards(pattern)
        text = self.pattern
        self._exact = not any(ch in _WILDCARDS for ch in text)
        self._match_all = text == _STAR
        self._literal_count = sum(1 for ch in text if ch not in _WILDCARDS)
        first = min((text.find(w) for w in _WILDCARDS if w in text), default=len(text))
        last = max(text.rfind(w) for w in _WILDCARDS) if not self._exact else len(text)
        self._prefix = text[:first]
        self._suffix = text[last + 1 :] if not self._exact else ""
        #: The pattern after its prefix when that is one wildcard alone (`INBOX/*`).
        self._tail = text[first:] if len(text) == first + 1 else ""
        self._separators = text.count(SEPARATOR)
        self._star = _STAR in text
        #: With `*` as the only wildcard: the literal runs between the first and last star.
        self._segments = (
            tuple(text[first + 1 : last].split(_STAR)) if _PERCENT not in text else None
        )
        literal_masks: dict[str, int] = {}
        wild = percent = 0
        for position, ch in enumerate(text):
            bit = 1 << position
            if ch == _STAR:
                wild |= bit
            elif ch == _PERCENT:
                wild |= bit
                percent |= bit
            else:
                literal_masks[ch] = literal_masks.get(ch, 0) | bit
        self._literal_masks = literal_masks
        self._wild = wild
        self._percent = percent
        self._accept = 1 << len(text)
        # Position 0, plus the position after it when it is a wildcard matching nothing.
        self._start = 1 | ((1 & wild) << 1)
        #: The NFA's state sets after each character of the name it ran on last.
        self._trail = [self._start]
        self._trail_name = ""

    def matches(self, name: str) -> bool:
        """Whether `name` (a store name: Unicode, `/` between levels) matches."""
        if self._exact:
            return name == self.pattern
        if self._match_all:
            return True
        if (
            len(name) < self._literal_count
            or not name.startswith(self._prefix)
            or not name.endswith(self._suffix)
        ):
            return False
        if self._tail == _STAR:
            return True
        if self._tail == _PERCENT:
            return SEPARATOR not in name[len(self._prefix) :]
        # Every literal separator needs one in the name; only `*` can match more.
        separators = name.count(SEPARATOR)
        if separators < self._separators or (not self._star and separators > self._separators):
            return False
        if self._segments is not None:
            return self._find_segments(name)
        return self._run(name)

    def _find_segments(self, name: str) -> bool:
        # The prefix and suffix cannot overlap: the name holds at least all literals.
        position = len(self._prefix)
        end = len(name) - len(self._suffix)
        for segment in self._segments or ():
            found = name.find(segment, position, end)
            if found < 0:
                return False
            position = found + len(segment)
        return True

    def _run(self, name: str) -> bool:
        literal_masks = self._literal_masks
        wild = self._wild
        # At a separator only `*` positions may stay where they are; `%` positions die.
        wild_at_separator = wild & ~self._percent
        trail = self._trail
        shared = min(_shared_start(self._trail_name, name), len(trail) - 1)
        del trail[shared + 1 :]
        self._trail_name = name
        states = trail[shared]
        for ch in name[shared:]:
            if not states:
                return False  # dead: the trail stops here, shorter than the name
            moved = (states & literal_masks.get(ch, 0)) << 1
            states = moved | (states & (wild_at_separator if ch == SEPARATOR else wild))
            # Folded wildcards are never adjacent, so one step closes over "matches nothing".
            states |= (states & wild) << 1
            trail.append(states)
        return bool(states & self._accept)


def _shared_start(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection over C-speed comparisons."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _fold_wildcards(pattern: str) -> str:
    out: list[str] = []
    for ch in pattern:
        if ch in _WILDCARDS and out and out[-1] in _WILDCARDS:
            if ch == _STAR:
                out[-1] = _STAR
            continue
        out.append(ch)
    return "".join(out)
