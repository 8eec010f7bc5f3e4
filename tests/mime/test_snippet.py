"""The body snippet, matching what Dovecot 2.3.19 sent in push events."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpush.mime.snippet import SnippetBuilder, body_snippet, first_text_part
from mailpush.mime.structure import parse_structure


def snippet_of(raw: bytes) -> str:
    return body_snippet(raw, parse_structure(raw))


def text_message(body: bytes, headers: bytes = b"") -> bytes:
    return b"From: a@example.net\r\nSubject: s\r\n" + headers + b"\r\n" + body


def multipart(subtype: str, *parts: bytes) -> bytes:
    raw = (
        b"From: a@example.net\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/" + subtype.encode() + b'; boundary="BND"\r\n\r\n'
        b"preamble\r\n"
    )
    for part in parts:
        raw += b"--BND\r\n" + part + b"\r\n"
    return raw + b"--BND--\r\nepilogue\r\n"


def build(text: str) -> str:
    builder = SnippetBuilder()
    builder.feed(text)
    return builder.result()


def test_snippet_collapses_whitespace_and_trims_both_ends() -> None:
    body = b"  Hello Alice,\r\n\r\n this is a plain\ttext message.\r\n\r\nBye\r\n\r\n"
    assert snippet_of(text_message(body)) == "Hello Alice, this is a plain text message. Bye"


def test_snippet_counts_characters_not_bytes() -> None:
    body = ("ü" * 50 + " " + "0123456789 " * 30).encode()
    snippet = snippet_of(text_message(body, b"Content-Type: text/plain; charset=utf-8\r\n"))
    assert len(snippet) == 200
    assert len(snippet.encode()) == 250
    assert snippet.endswith("0123456789 012345")  # cut mid-word


def test_snippet_never_ends_with_a_space() -> None:
    snippet = build("x" * 199 + " yz")
    assert snippet == "x" * 199


def test_snippet_skips_quoted_lines_when_other_text_exists() -> None:
    body = b"> quoted first\r\nReply text\r\n> quoted again\r\nmore\r\n"
    assert snippet_of(text_message(body)) == "Reply text more"


def test_snippet_of_only_quoted_lines_has_one_gt_prefix() -> None:
    body = b"> first quoted line\r\n> > nested quoted line\r\n> last quoted line\r\n"
    expected = ">first quoted line > nested quoted line last quoted line"
    assert snippet_of(text_message(body)) == expected


def test_quoted_fallback_is_at_most_199_characters_plus_gt() -> None:
    snippet = build("> " + "q" * 500)
    assert snippet == ">" + "q" * 199


def test_snippet_decodes_latin1_quoted_printable_with_soft_break() -> None:
    headers = (
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
    )
    body = b"Gr=FC=DFe aus K=F6ln, soft=\r\nbreak.\r\n"
    assert snippet_of(text_message(body, headers)) == "Grüße aus Köln, softbreak."


def test_snippet_decodes_base64_text() -> None:
    headers = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
    body = base64.encodebytes("Grüße aus base64".encode()).replace(b"\n", b"\r\n")
    assert snippet_of(text_message(body, headers)) == "Grüße aus base64"


def test_alternative_uses_plain_part() -> None:
    raw = multipart(
        "alternative",
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlain part: caf\xc3\xa9 cr\xc3\xa8me.\r\n"
        b"Second line.",
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>HTML part</p>",
    )
    assert snippet_of(raw) == "Plain part: café crème. Second line."


def test_alternative_prefers_plain_even_after_html() -> None:
    raw = multipart(
        "alternative",
        b"Content-Type: text/html\r\n\r\n<p>HTML part</p>",
        b"Content-Type: text/plain\r\n\r\nPlain part",
    )
    assert snippet_of(raw) == "Plain part"


def test_html_only_body_is_converted() -> None:
    html = (
        b"<html><head><title>Title text</title><style>p { color: red; }</style>"
        b"<script>var x = 1;</script></head><body><!-- a comment -->"
        b"<p>Hello&nbsp;<b>HTML</b> &amp; entities &lt;tag&gt; &eacute; &euro;</p>"
        b"<blockquote>quoted reply text</blockquote>"
        b"<div>A second&nbsp;&nbsp;block</div><ul><li>item one</li><li>item two</li></ul>"
        b"</body></html>"
    )
    raw = text_message(html, b"Content-Type: text/html; charset=utf-8\r\n")
    expected = (
        "Title text Hello\u00a0 HTML & entities <tag> é € A second\u00a0\u00a0block "
        "item one item two"
    )
    assert snippet_of(raw) == expected


def test_calendar_only_message_gives_calendar_text() -> None:
    ics = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Oracle//Push Test//EN\r\nMETHOD:REQUEST\r\n"
        b"BEGIN:VEVENT\r\nUID:1234567890@example.net\r\nDTSTAMP:20230102T100000Z\r\n"
        b"DTSTART:20230110T090000Z\r\nDTEND:20230110T100000Z\r\n"
        b"ORGANIZER:mailto:organizer@example.net\r\nSUMMARY:Project meeting\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    raw = text_message(ics, b"Content-Type: text/calendar; method=REQUEST\r\n")
    snippet = snippet_of(raw)
    assert snippet.startswith("BEGIN:VCALENDAR VERSION:2.0 PRODID:-//Oracle//Push Test//EN")
    assert len(snippet) == 200


def test_alternative_plain_and_calendar_uses_plain() -> None:
    raw = multipart(
        "alternative",
        b"Content-Type: text/plain\r\n\r\nYou are invited",
        b"Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR",
    )
    assert snippet_of(raw) == "You are invited"


def test_ics_attachment_gives_text_part_before_it() -> None:
    raw = multipart(
        "mixed",
        b"Content-Type: text/plain\r\n\r\nSee the invitation",
        b"Content-Type: application/octet-stream; name=invite.ics\r\n"
        b"Content-Disposition: attachment; filename=invite.ics\r\n\r\nBEGIN:VCALENDAR",
    )
    assert snippet_of(raw) == "See the invitation"


def test_empty_body_gives_empty_snippet() -> None:
    assert snippet_of(text_message(b"")) == ""


def test_no_text_part_gives_empty_snippet() -> None:
    raw = multipart(
        "mixed",
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=",
    )
    assert snippet_of(raw) == ""


def test_first_text_part_skips_leading_attachment() -> None:
    raw = multipart(
        "mixed",
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"U2hvdWxkIG5vdCBiZSBpbiBzbmlwcGV0",
        b"Content-Type: TeXT/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"<html><body><p>Should be in snippet</p></body></html>"),
    )
    assert snippet_of(raw) == "Should be in snippet"


def test_nested_alternative_inside_mixed_is_searched() -> None:
    inner = (
        b'Content-Type: multipart/alternative; boundary="IN"\r\n\r\n'
        b"--IN\r\nContent-Type: text/plain\r\n\r\nInner plain\r\n--IN--\r\n"
    )
    raw = multipart("mixed", inner, b"Content-Type: text/plain\r\n\r\nlater")
    assert snippet_of(raw) == "Inner plain"


def test_message_rfc822_is_not_searched() -> None:
    raw = multipart("mixed", b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntext")
    assert snippet_of(raw) == ""


def test_boms_and_nuls_are_dropped() -> None:
    assert snippet_of(text_message(b"\xef\xbb\xbfHel\x00lo")) == "Hello"


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert snippet_of(text_message(b"caf\xe9 ok")) == "caf\ufffd ok"


def test_us_ascii_label_still_passes_utf8_through() -> None:
    raw = text_message("café".encode(), b"Content-Type: text/plain; charset=us-ascii\r\n")
    assert snippet_of(raw) == "café"


def test_first_text_part_of_plain_message_is_the_message() -> None:
    root = parse_structure(text_message(b"body"))
    assert first_text_part(root) is root


def test_nbsp_is_not_collapsed_as_whitespace() -> None:
    assert build("a\u00a0\u00a0b  c") == "a\u00a0\u00a0b c"


def test_vertical_tab_and_form_feed_count_as_whitespace() -> None:
    assert build("a\x0bb\x0cc") == "a b c"


class _RunByRun(SnippetBuilder):
    """The builder without its whole-line step: every line walked run by run."""

    _add_line = SnippetBuilder._add_runs


_PIECES = st.sampled_from(
    ["word", "é", "longerword", "x" * 37, " ", "  ", "\t", "\r", "\v", "\f", "\n", "\r\n",
     ">", "> ", "\x00", "\ufeff", "\u00a0"]
)


@settings(max_examples=400)
@given(pieces=st.lists(_PIECES, max_size=160), cuts=st.lists(st.integers(0, 4000), max_size=4))
def test_taking_a_line_at_once_gives_what_the_run_by_run_walk_gives(
    pieces: list[str], cuts: list[int]
) -> None:
    text = "".join(pieces)
    whole, walked = SnippetBuilder(), _RunByRun()
    bounds = [0, *sorted(cut % (len(text) + 1) for cut in cuts), len(text)]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        whole.feed(text[start:stop])
        walked.feed(text[start:stop])
    assert whole.result() == walked.result()
