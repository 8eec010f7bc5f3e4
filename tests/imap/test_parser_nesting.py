"""Nesting in a command is bounded: too deep is a BAD, never a dropped connection.

8,000 nested `(` in a SEARCH used to exhaust Python's recursion limit, log a
RecursionError traceback and close the connection. Parentheses and the
operators that nest their operands (NOT, OR) count against `MAX_NESTING`.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from mailpush.imap.parser import MAX_NESTING, CommandSyntaxError, Tokenizer
from mailpush.imap.search import parse_search

from .conftest import ImapStack


class LineClient:
    """Just enough IMAP to send raw command lines and read the answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.counter = 0

    @classmethod
    async def logged_in(cls, stack: ImapStack) -> LineClient:
        reader, writer = await asyncio.open_connection(stack.host, stack.port)
        client = cls(reader, writer)
        await reader.readline()
        assert (await client.command("LOGIN alice secret"))[-1].startswith(b"t1 OK")
        assert (await client.command("SELECT INBOX"))[-1].startswith(b"t2 OK")
        return client

    async def command(self, line: str) -> list[bytes]:
        self.counter += 1
        tag = f"t{self.counter}".encode()
        self.writer.write(tag + b" " + line.encode() + b"\r\n")
        lines = []
        while True:
            answer = await asyncio.wait_for(self.reader.readline(), 10)
            assert answer, f"connection closed after {lines}"
            lines.append(answer)
            if answer.startswith(tag + b" "):
                return lines

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def nested(depth: int, key: str = "ALL") -> str:
    return "(" * depth + key + ")" * depth


# --- the parser -------------------------------------------------------------------------


def test_search_nested_to_the_limit_parses() -> None:
    parse_search(Tokenizer(nested(MAX_NESTING).encode()))
    parse_search(Tokenizer(("NOT " * MAX_NESTING + "SEEN").encode()))
    parse_search(Tokenizer(("OR SEEN " * MAX_NESTING + "DELETED").encode()))


@pytest.mark.parametrize(
    "search",
    [
        nested(MAX_NESTING + 1),
        "NOT " * (MAX_NESTING + 1) + "SEEN",
        "OR SEEN " * (MAX_NESTING + 1) + "DELETED",
        "OR " * (MAX_NESTING + 1) + "SEEN DELETED" + " DRAFT" * MAX_NESTING,
        "NOT (" * (MAX_NESTING // 2 + 1) + "SEEN" + ")" * (MAX_NESTING // 2 + 1),
    ],
)
def test_search_nested_past_the_limit_is_a_syntax_error(search: str) -> None:
    with pytest.raises(CommandSyntaxError, match="Too deep nesting"):
        parse_search(Tokenizer(search.encode()))


def test_siblings_do_not_add_up_to_nesting() -> None:
    # 500 lists side by side are 1 level deep, not 500.
    parse_search(Tokenizer(" ".join(["(SEEN)"] * 500).encode()))
    parse_search(Tokenizer(" ".join([nested(MAX_NESTING, "SEEN")] * 5).encode()))


# --- over the wire ---------------------------------------------------------------------------


async def test_search_with_8000_nested_parentheses_answers_bad_and_keeps_the_connection(
    stack: ImapStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await LineClient.logged_in(stack)

    deep = await client.command("SEARCH " + nested(8000))
    nots = await client.command("SEARCH " + "NOT " * 8000 + "ALL")
    ors = await client.command("UID SEARCH " + "OR ALL " * 8000 + "ALL")
    noop = await client.command("NOOP")
    fine = await client.command("SEARCH " + nested(MAX_NESTING))
    await client.close()

    for answer in (deep, nots, ors):
        assert len(answer) == 1, answer
        assert b" BAD " in answer[0] and b"Too deep nesting" in answer[0], answer
    assert noop[-1].split(b" ")[1] == b"OK"
    assert fine[-1].split(b" ")[1] == b"OK"
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == []
    assert "RecursionError" not in caplog.text
