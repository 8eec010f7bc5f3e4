"""CONDSTORE and QRESYNC (RFC 7162): the modifiers of SELECT, FETCH and STORE.

The grammars are read here into values; what they do lives with the command
that takes them (SELECT in `mailbox_commands`, FETCH and STORE in
`message_commands`), and the session keeps whether the client enabled them
(`Session.condstore`, `Session.qresync`). Errors are Dovecot 2.3.19's words:
an unknown SELECT parameter is refused as an "Unknown FETCH modifier", as it
is there, and only after the selected mailbox was closed, so SELECT reads its
parameters here and judges them in its handler.

Two choices where the RFC leaves one: a mailpush store always keeps modseqs,
so there is never a `NOMODSEQ`; and SELECT says `HIGHESTMODSEQ` only to a
session that enabled CONDSTORE (Dovecot also says it once any client used
CONDSTORE on the mailbox: docs/imap.md#condstore-and-qresync).
"""

from __future__ import annotations

from dataclasses import dataclass

from .parser import CommandSyntaxError, Tokenizer
from .sequence_set import SequenceSet

__all__ = [
    "FetchModifiers",
    "QresyncParameters",
    "SelectParameters",
    "parse_fetch_modifiers",
    "parse_select_parameters",
    "parse_store_modifiers",
]


@dataclass(frozen=True, slots=True)
class QresyncParameters:
    """`(QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]]))` of SELECT/EXAMINE."""

    uidvalidity: int
    modseq: int
    #: The UIDs the client knows; None: all of them (VANISHED lists every expunged UID).
    known_uids: SequenceSet | None


@dataclass(frozen=True, slots=True)
class SelectParameters:
    condstore: bool = False
    qresync: QresyncParameters | None = None
    #: The first parameter mailpush does not know: SELECT refuses it with BAD.
    unknown: str | None = None


@dataclass(frozen=True, slots=True)
class FetchModifiers:
    """`(CHANGEDSINCE modseq [VANISHED])` after a FETCH item list."""

    changed_since: int | None = None
    vanished: bool = False


def parse_select_parameters(tokens: Tokenizer) -> SelectParameters:
    """SELECT's parameter list, after the mailbox name and its space."""
    if not tokens.open_paren():
        raise CommandSyntaxError("Invalid SELECT parameters")
    condstore = False
    qresync: QresyncParameters | None = None
    unknown: str | None = None
    while not tokens.close_paren():
        name = tokens.atom("select parameter").upper()
        if name == "CONDSTORE":
            condstore = True
        elif name == "QRESYNC":
            tokens.space()
            qresync = _qresync(tokens)
        elif unknown is None:
            unknown = name
            _skip_value(tokens)
        tokens.skip_space()
    return SelectParameters(condstore, qresync, unknown)


def parse_fetch_modifiers(tokens: Tokenizer) -> FetchModifiers:
    """FETCH's modifier list; Dovecot refuses any but CHANGEDSINCE and VANISHED."""
    if not tokens.open_paren():
        raise CommandSyntaxError("Unknown FETCH modifier")
    changed_since: int | None = None
    vanished = False
    while not tokens.close_paren():
        name = tokens.atom("fetch modifier").upper()
        if name == "CHANGEDSINCE":
            tokens.space()
            changed_since = tokens.number("modseq")
        elif name == "VANISHED":
            vanished = True
        else:
            raise CommandSyntaxError("Unknown FETCH modifier")
        tokens.skip_space()
    return FetchModifiers(changed_since, vanished)


def parse_store_modifiers(tokens: Tokenizer) -> int | None:
    """STORE's `(UNCHANGEDSINCE modseq)`: the modseq (None for an empty list)."""
    if not tokens.open_paren():
        raise CommandSyntaxError("Unknown STORE modifier")
    unchanged_since: int | None = None
    while not tokens.close_paren():
        name = tokens.atom("store modifier").upper()
        if name != "UNCHANGEDSINCE":
            raise CommandSyntaxError("Unknown STORE modifier")
        tokens.space()
        unchanged_since = tokens.number("modseq")
        tokens.skip_space()
    return unchanged_since


def _qresync(tokens: Tokenizer) -> QresyncParameters:
    if not tokens.open_paren():
        raise CommandSyntaxError("Invalid QRESYNC parameters")
    uidvalidity = tokens.nz_number("uidvalidity")
    tokens.space()
    modseq = tokens.nz_number("modseq")
    known: SequenceSet | None = None
    if tokens.skip_space():
        if not tokens.peek_is(b"("):
            known = tokens.sequence_set()
            tokens.skip_space()
        if tokens.open_paren():
            # The sequence-match data only narrows what the server reports; mailpush
            # reads its store's record of expunges instead, which is exact.
            tokens.sequence_set()
            tokens.space()
            tokens.sequence_set()
            if not tokens.close_paren():
                raise CommandSyntaxError("Invalid QRESYNC parameters")
    if not tokens.close_paren():
        raise CommandSyntaxError("Invalid QRESYNC parameters")
    return QresyncParameters(uidvalidity, modseq, known)


def _skip_value(tokens: Tokenizer) -> None:
    """An unknown parameter's value, if it has one: an atom or a parenthesised list."""
    if not tokens.skip_space():
        return
    if tokens.peek_is(b")"):
        return
    if tokens.open_paren():
        depth = 1
        while depth and not tokens.at_end():
            if tokens.open_paren():
                depth += 1
            elif tokens.close_paren():
                depth -= 1
            else:
                tokens.pos += 1
        return
    tokens.atom("select parameter value")
