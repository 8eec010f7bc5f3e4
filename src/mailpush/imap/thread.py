"""THREAD=REFERENCES and THREAD=ORDEREDSUBJECT (RFC 5256 §3), answered as Dovecot 2.3 answers.

Both are pure functions of the messages' threading fields (`ThreadFields`,
read from the headers by `sort_fields`); the command handler gathers those
off the event loop and calls `thread_references` / `thread_ordered_subject`
(in the worker pool too when the mailbox is large).

REFERENCES follows the RFC's steps with Dovecot's readings of them
(index-thread-links.c, index-thread-finish.c):

* a message's parents are its References ids, or the first In-Reply-To id
  when References has none; a link that would close a loop is not made, and
  a container keeps the first parent it was given, except that a message's
  own last reference replaces whatever parent an earlier message implied;
* a duplicate Message-ID threads as a message without one;
* dummies (ids referred to but not present) are dropped below the root: a
  message hangs from its nearest present ancestor, or from the dummy at the
  top of its chain; a top dummy with one child gives way to that child, but
  only after subjects are gathered;
* roots are put in date order before subjects are gathered, and siblings
  and roots are ordered by sent date (the Date header in UTC, the arrival
  time when it is missing or invalid), then by UID.

The output is RFC 5256's thread-list: `(1 2 3)` for a chain, `(1 (2)(3))`
for one message with two replies, `((2)(3))` under a dummy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "ThreadFields",
    "ThreadNode",
    "render_threads",
    "thread_ordered_subject",
    "thread_references",
]


class ThreadFields(NamedTuple):
    """What threading reads of one message; `number` is what the reply shows (seq or UID).

    A NamedTuple rather than a frozen dataclass: ten thousand of them cross to
    the worker pool per THREAD, and tuples pickle seven times faster.
    """

    number: int
    uid: int
    message_id: str | None
    #: References' ids in order, or In-Reply-To's first id when References has none.
    references: tuple[str, ...]
    #: The base subject (collation form); "" when empty or absent.
    base_subject: str
    reply: bool
    has_subject: bool
    #: Sent date (UTC epoch seconds), the arrival time when the Date header is unusable.
    date: int


class ThreadNode:
    """A message (or a dummy, `fields` None) and its replies, in output order once sorted."""

    __slots__ = ("fields", "parent", "children", "ignore", "reply", "parent_root")

    def __init__(self, fields: ThreadFields | None = None) -> None:
        self.fields = fields
        self.parent: ThreadNode | None = None
        self.children: list[ThreadNode] = []
        # Root bookkeeping of subject gathering (step 5).
        self.ignore = False
        self.reply = False
        self.parent_root: ThreadNode | None = None


def thread_references(messages: Sequence[ThreadFields]) -> list[ThreadNode]:
    """The REFERENCES threads of `messages` (given in UID order), roots in output order."""
    containers = _link(messages)
    roots = _attach_to_present_ancestors(containers)
    roots = _sort_roots(roots)
    if _gather_subjects(roots):
        roots = _sort_roots(roots)
    return roots


def thread_ordered_subject(messages: Sequence[ThreadFields]) -> list[ThreadNode]:
    """ORDEREDSUBJECT: one thread per base subject, the first message as parent of the rest.

    Messages are ordered by base subject, then sent date, then UID (SORT
    SUBJECT DATE); threads by their first message's date, then its number.
    """
    ordered = sorted(messages, key=lambda m: (m.base_subject, m.date, m.uid))
    threads: list[ThreadNode] = []
    current: ThreadNode | None = None
    previous = ""
    for message in ordered:
        if current is None or message.base_subject != previous:
            current = ThreadNode(message)
            threads.append(current)
        else:
            child = ThreadNode(message)
            child.parent = current
            current.children.append(child)
        previous = message.base_subject
    threads.sort(key=lambda t: (_fields(t).date, _fields(t).number))
    return threads


def render_threads(roots: Sequence[ThreadNode]) -> str:
    """The thread-lists of `roots` as one string (without the `* THREAD` prefix).

    Iterative, not recursive: a chain of replies may be as long as the mailbox.
    """
    out: list[str] = []
    # Items: a string to write, or (node, at_root) to expand: at the root (or as one of
    # several siblings) a node opens its own list, a lone child continues its parent's.
    stack: list[str | tuple[ThreadNode, bool]] = []
    for root in reversed(roots):
        stack.append((root, True))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node, at_root = item
        if at_root:
            _push_subthread(stack, node)
            continue
        out.append(str(_fields(node).number))
        if node.children:
            out.append(" ")
            _push_children(stack, node.children)
    return "".join(out)


def _push_subthread(stack: list[str | tuple[ThreadNode, bool]], node: ThreadNode) -> None:
    """`(n)`, `(n children...)`, or `(children...)` for a dummy."""
    stack.append(")")
    if node.children:
        _push_children(stack, node.children)
        if node.fields is not None:
            stack.append(f"{node.fields.number} ")
    else:
        stack.append(str(_fields(node).number))
    stack.append("(")


def _push_children(stack: list[str | tuple[ThreadNode, bool]], children: list[ThreadNode]) -> None:
    if len(children) == 1:
        stack.append((children[0], False))
        return
    for child in reversed(children):
        stack.append((child, True))


# --- REFERENCES, step by step -------------------------------------------------------------


def _link(messages: Sequence[ThreadFields]) -> list[ThreadNode]:
    """Steps 1A and 1B: one container per id, linked parent to child; in creation order."""
    by_id: dict[str, ThreadNode] = {}
    containers: list[ThreadNode] = []

    def container(message_id: str) -> ThreadNode:
        found = by_id.get(message_id)
        if found is None:
            found = by_id[message_id] = ThreadNode()
            containers.append(found)
        return found

    for message in messages:
        own = by_id.get(message.message_id) if message.message_id else None
        if own is None or own.fields is not None:
            # No id, or a duplicate one: a container nobody else can refer to.
            own = ThreadNode()
            containers.append(own)
            if message.message_id and message.message_id not in by_id:
                by_id[message.message_id] = own
        own.fields = message
        parent: ThreadNode | None = None
        for reference in message.references:
            node = container(reference)
            if parent is not None:
                _link_pair(parent, node)
            parent = node
        if own.parent is not None and own.parent is not parent:
            own.parent = None  # the message's own last reference decides its parent
        if parent is not None:
            _link_pair(parent, own)
    return containers


def _link_pair(parent: ThreadNode, child: ThreadNode) -> None:
    """Make `parent` the parent of `child` unless that closes a loop or `child` has one."""
    ancestor: ThreadNode | None = parent
    while ancestor is not None:
        if ancestor is child:
            return
        ancestor = ancestor.parent
    if child.parent is None:
        child.parent = parent


def _attach_to_present_ancestors(containers: list[ThreadNode]) -> list[ThreadNode]:
    """Steps 2 and 4: the roots; each message under its nearest present ancestor.

    Dummies below the root vanish; a message whose ancestors are all dummies
    hangs from the topmost one.
    """
    roots: list[ThreadNode] = []
    for node in containers:
        node.children = []
    for node in containers:
        if node.parent is None:
            roots.append(node)
            continue
        if node.fields is None:
            continue
        parent = node.parent
        while parent.fields is None and parent.parent is not None:
            parent = parent.parent
        parent.children.append(node)
    return roots


def _sort_key(node: ThreadNode) -> tuple[int, int]:
    fields = _fields(node)
    return fields.date, fields.uid


def _sort_children(node: ThreadNode) -> None:
    if len(node.children) > 1:
        node.children.sort(key=_sort_key)


def _sort_roots(roots: list[ThreadNode]) -> list[ThreadNode]:
    """Order roots by date; a dummy counts as its oldest child, and gives way to an only child."""
    kept: list[tuple[tuple[int, int], ThreadNode]] = []
    for root in roots:
        if root.ignore:
            continue
        if root.fields is None:
            if not root.children:
                continue
            _sort_children(root)
            if len(root.children) == 1:
                root = root.children[0]
            else:
                kept.append((_sort_key(root.children[0]), root))
                continue
        kept.append((_sort_key(root), root))
    kept.sort(key=lambda pair: pair[0])
    ordered = [root for _, root in kept]
    for root in ordered:
        root.ignore = False
        root.parent_root = None
        _sort_tree(root)
    return ordered


def _sort_tree(root: ThreadNode) -> None:
    pending = [root]
    while pending:
        node = pending.pop()
        _sort_children(node)
        pending.extend(node.children)


def _gather_subjects(roots: list[ThreadNode]) -> bool:
    """Step 5: merge root threads with the same base subject; whether any merged."""
    table: dict[str, ThreadNode] = {}
    subjects: dict[int, str] = {}
    for root in roots:
        source = root if root.fields is not None else root.children[0]
        fields = _fields(source)
        if not fields.has_subject or not fields.base_subject:
            continue
        subject = fields.base_subject
        subjects[id(root)] = subject
        held = table.get(subject)
        if held is None:
            table[subject] = root
        elif held.fields is not None and (
            root.fields is None or (held.reply and not fields.reply)
        ):
            held.parent_root = root
            table[subject] = root
        else:
            root.parent_root = held
        root.reply = fields.reply
    changed = False
    for root in list(roots):
        if root.parent_root is None or root.ignore:
            continue
        changed = True
        top = root.parent_root
        while top.parent_root is not None:
            top = top.parent_root
        if root.fields is None:
            # Both dummies: the children of both become siblings.
            top.children.extend(root.children)
            root.children = []
            root.ignore = True
        elif top.fields is None or (root.reply and not top.reply):
            top.children.append(root)
            root.ignore = True
        else:
            dummy = ThreadNode()
            dummy.children = [top, root]
            top.parent_root = dummy
            top.ignore = True
            root.ignore = True
            roots.append(dummy)
    return changed


def _fields(node: ThreadNode) -> ThreadFields:
    assert node.fields is not None, "a dummy has no message"
    return node.fields
