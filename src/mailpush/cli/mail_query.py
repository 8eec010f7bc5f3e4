"""doveadm's search queries: IMAP SEARCH keys plus `mailbox NAME`, matched in the store.

`mailpush search|fetch|expunge USER QUERY...` take the query as doveadm does:
each argument is one IMAP search token (`SUBJECT "hello world"` is written
`SUBJECT 'hello world'` in the shell), and `mailbox NAME` (LIST wildcards `*`
and `%` allowed) limits the mailboxes searched. The IMAP keys are compiled by
the IMAP server's own `parse_search` and evaluated by its `match_rows`, so a
query selects exactly what the same SEARCH would in an IMAP session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from ..errors import MailpushError
from ..imap.heavy_work import SearchRow, match_rows
from ..imap.list_pattern import ListPattern
from ..imap.parser import CommandSyntaxError, Tokenizer
from ..imap.search import SearchProgram, UnsupportedCharsetError, parse_search
from ..store import MailStore, MessageInfo

__all__ = ["MailQuery", "QueryMatch", "matching_messages", "parse_query"]

#: Messages read from the store at once: bounds memory for body searches of large mailboxes.
_CHUNK = 500


@dataclass(frozen=True)
class MailQuery:
    #: LIST patterns from `mailbox NAME` keys; empty: every mailbox.
    mailboxes: tuple[ListPattern, ...]
    program: SearchProgram


@dataclass(frozen=True)
class QueryMatch:
    mailbox: str
    seq: int
    info: MessageInfo
    #: The message, when the search read it (body or header keys); else None.
    raw: bytes | None


def parse_query(arguments: Sequence[str]) -> MailQuery:
    """The query of `arguments`; an empty query is `ALL`. Raises MailpushError."""
    patterns: list[ListPattern] = []
    tokens: list[str] = []
    index = 0
    while index < len(arguments):
        word = arguments[index]
        if word.lower() == "mailbox":
            if index + 1 == len(arguments):
                raise MailpushError("search query: `mailbox` needs a mailbox name or pattern")
            patterns.append(ListPattern(arguments[index + 1]))
            index += 2
            continue
        tokens.append(_imap_token(word))
        index += 1
    text = " ".join(tokens) or "ALL"
    try:
        program = parse_search(Tokenizer(text.encode("utf-8")))
    except UnsupportedCharsetError as exc:
        raise MailpushError(f"search query: unsupported charset {exc} (use UTF-8)") from None
    except CommandSyntaxError as exc:
        raise MailpushError(
            f"search query {text!r}: {exc} (IMAP SEARCH keys, e.g. SUBJECT hello SINCE"
            " 1-Jan-2026, plus `mailbox NAME`)"
        ) from None
    return MailQuery(tuple(patterns), program)


async def matching_messages(
    store: MailStore, user: str, query: MailQuery
) -> AsyncIterator[QueryMatch]:
    """The messages `query` selects, mailbox by mailbox (LIST order), in UID order."""
    for mailbox in await store.list_mailboxes(user):
        if not mailbox.selectable or not _wanted(query, mailbox.name):
            continue
        messages = await store.messages(user, mailbox.name)
        if not messages:
            continue
        max_seq, max_uid = len(messages), messages[-1].uid
        for start in range(0, len(messages), _CHUNK):
            chunk = messages[start : start + _CHUNK]
            raws: dict[int, bytes] = {}
            if query.program.needs_raw:
                raws = await store.raw_messages(user, mailbox.name, [m.uid for m in chunk])
            rows: list[SearchRow] = [
                (start + offset + 1, info.uid, info.flags, info.keywords, info.recent, info,
                 raws.get(info.uid))
                for offset, info in enumerate(chunk)
            ]
            by_uid = {info.uid: info for info in chunk}
            for seq, uid in match_rows(query.program, max_seq, max_uid, rows):
                yield QueryMatch(mailbox.name, seq, by_uid[uid], raws.get(uid))


def _wanted(query: MailQuery, mailbox: str) -> bool:
    return not query.mailboxes or any(pattern.matches(mailbox) for pattern in query.mailboxes)


def _imap_token(word: str) -> str:
    """One shell argument as one IMAP token: quoted when it holds spaces or quotes."""
    if word and word.isascii() and word.isprintable() and not any(c in word for c in ' "\\'):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
