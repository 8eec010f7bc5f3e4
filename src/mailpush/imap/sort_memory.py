"""What the server keeps of SORT and THREAD between commands, per mailbox.

Dovecot answers a repeated SORT or THREAD from its indexes: each message's
sort keys sit in dovecot.index.cache, the order of string keys in the
index's sort extensions, the thread links in dovecot.index.thread. This is
the same memory, kept by the server process for the mailboxes used most
recently, one `MailboxMemory` per (user, mailbox, UIDVALIDITY):

* `facts`: each message's `MessageFacts`. A message never changes, so they
  never go stale; a renamed or re-created mailbox gets a new UIDVALIDITY.
* `orders`: per sort program, the UIDs it last ordered, in order. A later
  SORT whose matches are among them filters that list instead of sorting:
  the order is total (equal keys fall back to UID order, which is sequence
  order), so the order of a subset is that subset of the order. Messages
  that arrived since are put in their places (`sort_work.extend_order`).
* `threads`: per algorithm and numbering, the last answer and the matches
  it was made from. Threading depends on the whole set of matches (dummies,
  subject gathering), so only the very same matches reuse it.

A mailbox's weight is the messages it remembers (facts, ordered UIDs and
threaded UIDs each count once); the least recently used mailboxes are
forgotten once the weights add up to more than `capacity`, and a mailbox
heavier than that on its own is not kept at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sort_fields import MessageFacts, SortCriterion

__all__ = ["FactsCache", "MailboxMemory", "SortOrder", "ThreadAnswer"]

#: Sort programs remembered per mailbox (a client uses one or two).
ORDERS_PER_MAILBOX = 8
#: Facts of expunged messages are dropped once a mailbox holds this many more than it has.
EXPUNGED_SLACK = 1_000

MailboxKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class SortOrder:
    """The UIDs a sort program last ordered (`uids`), in its order (`order`)."""

    uids: frozenset[int]
    order: list[int]


@dataclass(frozen=True, slots=True)
class ThreadAnswer:
    """A THREAD answer (`text`, without `* THREAD `) for matches `uids` shown as `numbers`."""

    uids: list[int]
    numbers: list[int]
    text: str


class MailboxMemory:
    """What SORT and THREAD know of one mailbox (one UIDVALIDITY of it)."""

    __slots__ = ("facts", "orders", "threads", "weight")

    def __init__(self) -> None:
        self.facts: dict[int, MessageFacts] = {}
        self.orders: OrderedDict[tuple[SortCriterion, ...], SortOrder] = OrderedDict()
        self.threads: dict[tuple[str, bool], ThreadAnswer] = {}
        #: The weight the cache last counted for this mailbox.
        self.weight = 0

    def order_of(
        self, criteria: tuple[SortCriterion, ...], matched: frozenset[int]
    ) -> tuple[list[int], list[int]] | None:
        """What is known of the order of `matched` by `criteria`: (those of them a remembered
        order holds, in order; the others, in UID order), or None when nothing is."""
        known = self.orders.get(criteria)
        if known is None:
            return None
        self.orders.move_to_end(criteria)
        if matched == known.uids:
            return known.order, []
        if matched <= known.uids:
            return [uid for uid in known.order if uid in matched], []
        return (
            [uid for uid in known.order if uid in matched],
            sorted(uid for uid in matched if uid not in known.uids),
        )

    def remember_order(
        self, criteria: tuple[SortCriterion, ...], matched: frozenset[int], order: list[int]
    ) -> None:
        self.orders[criteria] = SortOrder(matched, order)
        self.orders.move_to_end(criteria)
        while len(self.orders) > ORDERS_PER_MAILBOX:
            self.orders.popitem(last=False)

    def thread_answer(
        self, key: tuple[str, bool], uids: list[int], numbers: list[int]
    ) -> str | None:
        """The remembered answer for exactly these matches, numbered so, if there is one."""
        known = self.threads.get(key)
        if known is None or known.uids != uids or known.numbers != numbers:
            return None
        return known.text

    def remember_thread(
        self, key: tuple[str, bool], uids: list[int], numbers: list[int], text: str
    ) -> None:
        self.threads[key] = ThreadAnswer(uids, numbers, text)

    def forget_expunged(self, present: Sequence[int]) -> None:
        """Drop the facts of messages no longer in `present` (a view's UIDs, ascending).

        Only once they are many: until then a lookup of a gone message costs nothing.
        UIDs above the view's last are kept, another session may already see them.
        """
        if len(self.facts) <= len(present) + EXPUNGED_SLACK:
            return
        keep = set(present)
        last = present[-1] if present else 0
        # In place: a command running meanwhile holds this very dict.
        for uid in [uid for uid in self.facts if uid not in keep and uid <= last]:
            del self.facts[uid]

    def count_weight(self) -> int:
        return (
            len(self.facts)
            + sum(len(o.order) for o in self.orders.values())
            + sum(len(t.uids) for t in self.threads.values())
        )


class FactsCache:
    """Every `MailboxMemory` of a server, least recently used out first.

    Shared by every connection of a server, like `fetch.StructureCache`.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._mailboxes: OrderedDict[MailboxKey, MailboxMemory] = OrderedDict()
        self._weight = 0

    def mailbox(self, user: str, mailbox: str, uidvalidity: int) -> MailboxMemory:
        """The memory of one mailbox (a new, empty one if it was forgotten or never kept)."""
        key = (user, mailbox, uidvalidity)
        memory = self._mailboxes.get(key)
        if memory is None:
            memory = self._mailboxes[key] = MailboxMemory()
        else:
            self._mailboxes.move_to_end(key)
        return memory

    def settle(self, user: str, mailbox: str, uidvalidity: int, memory: MailboxMemory) -> None:
        """Count what a command added to `memory`; forget mailboxes beyond the capacity."""
        key = (user, mailbox, uidvalidity)
        if self._mailboxes.get(key) is not memory:
            return  # forgotten meanwhile: the command's work is not kept
        weight = memory.count_weight()
        self._weight += weight - memory.weight
        memory.weight = weight
        while self._weight > self._capacity and self._mailboxes:
            _, oldest = self._mailboxes.popitem(last=False)
            self._weight -= oldest.weight

    def __len__(self) -> int:
        """Mailboxes remembered."""
        return len(self._mailboxes)

    @property
    def weight(self) -> int:
        """Messages remembered, over all mailboxes (see the module docstring)."""
        return self._weight
