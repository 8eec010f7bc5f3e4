"""The command tokenizer: IMAP grammar primitives, and arbitrary input never crashes it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpush.imap.fetch import parse_fetch_items
from mailpush.imap.mutf7 import InvalidMutf7Error, decode_mutf7, encode_mutf7
from mailpush.imap.parser import (
    CommandSyntaxError,
    Tokenizer,
    extract_tag,
    literal_at_end,
    parse_command,
)
from mailpush.imap.search import UnsupportedCharsetError, parse_search
from mailpush.imap.sequence_set import (
    STAR,
    InvalidSequenceSetError,
    format_uid_ranges,
    parse_sequence_set,
)


def test_command_keeps_tag_and_uppercases_name_including_uid_prefix() -> None:
    command = parse_command(b"a1 uid fetch 1:* FLAGS")
    assert (command.tag, command.name) == ("a1", "UID FETCH")
    command.args.space()
    assert command.args.sequence_set().ranges == ((1, STAR),)


def test_quoted_strings_unescape_backslash_and_quote() -> None:
    tokens = Tokenizer(b'"a\\"b\\\\c"')
    assert tokens.string() == b'a"b\\c'


def test_literal_is_read_from_the_assembled_command() -> None:
    tokens = Tokenizer(b"{5}\r\nhello rest")
    assert tokens.astring() == b"hello"
    assert tokens.data[tokens.pos :] == b" rest"


def test_literal_announcements_are_recognised_with_and_without_plus() -> None:
    assert literal_at_end(b"a APPEND INBOX {12}") == (12, True)
    assert literal_at_end(b"a APPEND INBOX {12+}") == (12, False)
    assert literal_at_end(b'a LOGIN "x{3}"') is None


def test_flag_list_accepts_system_flags_and_keywords() -> None:
    assert Tokenizer(b"(\\Seen $Label1 \\*)").flag_list() == ["\\Seen", "$Label1", "\\*"]


def test_a_parenthesised_list_reads_each_item_with_the_reader_given() -> None:
    tokens = Tokenizer(b'() (a "b c" {1}\r\nd) rest')
    assert tokens.paren_list(tokens.astring_text) == []
    tokens.space()
    assert tokens.paren_list(tokens.astring_text) == ["a", "b c", "d"]
    assert Tokenizer(b"(MESSAGES UIDNEXT)").atom_list() == ["MESSAGES", "UIDNEXT"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"a b)", "Expected a parenthesised list"),
        (b"(a  b)", ""),
        (b"(a b", ""),
    ],
)
def test_a_parenthesised_list_needs_its_parentheses_and_single_spaces(
    text: bytes, reason: str
) -> None:
    tokens = Tokenizer(text)
    with pytest.raises(CommandSyntaxError) as info:
        tokens.paren_list(tokens.astring_text)
    assert reason in str(info.value) and str(info.value)


def test_a_flag_list_without_parenthesis_says_a_flag_list_was_expected() -> None:
    with pytest.raises(CommandSyntaxError, match="Expected a parenthesised flag list"):
        Tokenizer(b"\\Seen").flag_list()


def test_mailbox_names_are_decoded_from_modified_utf7() -> None:
    assert Tokenizer(b"Entw&APw-rfe").mailbox() == "Entwürfe"


@pytest.mark.parametrize(
    "text",
    [b'"unterminated', b'"bad \\x escape"', b"{99}\r\nshort", b"(\\Seen", b""],
)
def test_malformed_arguments_raise_a_syntax_error_with_a_reason(text: bytes) -> None:
    tokens = Tokenizer(text)
    with pytest.raises(CommandSyntaxError) as info:
        if text.startswith(b"("):
            tokens.flag_list()
        else:
            tokens.string()
    assert str(info.value)


def test_extract_tag_falls_back_to_star() -> None:
    assert extract_tag(b"a12 FETCH") == "a12"
    assert extract_tag(b"\x00\x01") == "*"


def test_sequence_sets_resolve_star_and_reject_zero() -> None:
    numbers = parse_sequence_set("1,3:*")
    assert numbers.numbers(5) == [1, 3, 4, 5]
    assert numbers.uids([2, 10, 11]) == [10, 11]
    assert parse_sequence_set("20:*").uids([1, 5]) == [5]
    with pytest.raises(InvalidSequenceSetError):
        parse_sequence_set("0:3")
    with pytest.raises(InvalidSequenceSetError):
        parse_sequence_set("1:9").numbers(3)


def test_uid_ranges_are_compacted() -> None:
    assert format_uid_ranges([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"


@pytest.mark.parametrize("name", ["INBOX", "Entwürfe", "日本語", "a&b", "~peter/mail/台北/日本語"])
def test_mutf7_round_trips(name: str) -> None:
    assert decode_mutf7(encode_mutf7(name)) == name


def test_mutf7_known_encodings_and_rejections() -> None:
    assert encode_mutf7("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    with pytest.raises(InvalidMutf7Error):
        decode_mutf7("&AGE-")  # base64 of printable ASCII
    with pytest.raises(InvalidMutf7Error):
        decode_mutf7("&Jjo")


def test_fetch_items_expand_macros_and_sections() -> None:
    plan = parse_fetch_items(Tokenizer(b"(FAST BODY.PEEK[1.HEADER.FIELDS (From To)]<0.10>)"), True)
    names = [item.name for item in plan.items]
    assert names == ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "SECTION"]
    section = plan.items[-1]
    assert section.label == b"BODY[1.HEADER.FIELDS (From To)]<0>"
    assert section.peek and section.partial == (0, 10)
    assert not plan.sets_seen


def test_search_rejects_unknown_charsets_and_keys() -> None:
    with pytest.raises(UnsupportedCharsetError):
        parse_search(Tokenizer(b"CHARSET KOI8-R ALL"))
    with pytest.raises(CommandSyntaxError):
        parse_search(Tokenizer(b"FROBNICATE"))


_ALPHABET = st.sampled_from(
    [b" ", b"(", b")", b"[", b"]", b"<", b">", b"{", b"}", b"+", b"\r\n", b'"', b"\\", b"*",
     b"%", b"1", b"0", b":", b",", b"$", b".", b"a", b"Z", b"\xc3", b"\x00", b"{3}\r\n",
     b"FLAGS", b"BODY", b"PEEK", b"HEADER.FIELDS", b"UID", b"NOT", b"OR", b"NIL", b"&-", b"&"]
)  # fmt: skip


@given(st.lists(_ALPHABET, max_size=40).map(b"".join))
def test_no_input_makes_the_parsers_raise_anything_but_syntax_errors(data: bytes) -> None:
    for parse in (
        lambda t: parse_fetch_items(t, True),
        parse_search,
        lambda t: t.flag_list(),
        lambda t: t.mailbox(),
        lambda t: t.list_mailbox(),
        lambda t: t.sequence_set(),
    ):
        try:
            parse(Tokenizer(data))
        except (CommandSyntaxError, UnsupportedCharsetError):
            pass
    try:
        parse_command(data)
    except CommandSyntaxError:
        pass
