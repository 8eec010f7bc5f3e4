"""The MIME tree: boundaries, nesting and parameters."""

from __future__ import annotations

from mailpush.mime.structure import parse_content_field, parse_structure


def test_multipart_children_have_exact_body_ranges() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"pre\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepi"
    )
    root = parse_structure(raw)
    bodies = [raw[child.body_start : child.body_end] for child in root.children]
    assert bodies == [b"one", b"two"]


def test_bare_lf_boundaries_are_found() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b\n\ny\n--b--\n"
    root = parse_structure(raw)
    assert [raw[c.body_start : c.body_end] for c in root.children] == [b"x", b"y"]


def test_unclosed_inner_multipart_ends_at_outer_boundary() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        b"--inner\r\n\r\ninner text\r\n"
        b"--outer\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--outer--\r\n"
    )
    root = parse_structure(raw)
    assert len(root.children) == 2
    inner = root.children[0]
    assert [raw[c.body_start : c.body_end] for c in inner.children] == [b"inner text"]


def test_multipart_without_boundary_has_no_children() -> None:
    root = parse_structure(b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n")
    assert root.children == []


def test_message_rfc822_body_is_parsed_as_a_message() -> None:
    raw = b"Content-Type: message/rfc822\r\n\r\nContent-Type: text/calendar\r\n\r\nBEGIN"
    root = parse_structure(raw)
    assert root.message is not None
    assert root.message.effective_type == "text/calendar"


def test_missing_content_type_reads_as_text_plain() -> None:
    root = parse_structure(b"Subject: x\r\n\r\nbody")
    assert root.content_type is None
    assert root.effective_type == "text/plain"


def test_content_type_is_lowercased_and_params_unquoted() -> None:
    field = parse_content_field('Text/HTML; Charset="UTF-8"; name="a \\"b\\".ics"')
    assert field is not None
    assert field.value == "text/html"
    assert field.params == {"charset": "UTF-8", "name": 'a "b".ics'}


def test_rfc2231_continuations_and_charset_are_decoded() -> None:
    field = parse_content_field(
        "attachment; filename*0*=UTF-8''Einladung%20f%C3%BCr; filename*1=\" Team.ics\""
    )
    assert field is not None
    assert field.params["filename"] == "Einladung für Team.ics"


def test_part_count_is_bounded() -> None:
    parts = b"".join(b"--b\r\n\r\nx\r\n" for _ in range(20_000))
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    root = parse_structure(raw)
    assert len(root.children) < 10_000


def test_deep_nesting_is_bounded() -> None:
    raw = b""
    for level in range(300):
        raw += b"Content-Type: multipart/mixed; boundary=l%d\r\n\r\n--l%d\r\n" % (level, level)
    root = parse_structure(raw + b"\r\ntext")
    depth = 0
    part = root
    while part.children:
        part = part.children[0]
        depth += 1
    assert depth <= 100


# The two parsers this tree replaced disagreed on the inputs below; each test
# pins the answer Dovecot 2.3.19 gives (FETCH BODYSTRUCTURE on the same bytes).


def test_a_delimiter_line_at_the_very_end_opens_an_empty_last_part() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n\r\n--b\r\n"
    root = parse_structure(raw)
    assert [raw[c.body_start : c.body_end] for c in root.children] == [b"one\r\n", b""]


def test_an_rfc2231_boundary_is_decoded_before_splitting() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary*0=b; boundary*1=c\r\n\r\n"
        b"--bc\r\n\r\nx\r\n\r\n--bc--\r\n"
    )
    root = parse_structure(raw)
    assert [raw[c.body_start : c.body_end] for c in root.children] == [b"x\r\n"]


def nested(depth: int) -> bytes:
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%03dz\r\n\r\n--b%03dz\r\n" % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--b%03dz--\r\n" % i for i in reversed(range(depth)))
    return head + b"Content-Type: text/plain\r\n\r\nleaf\r\n" + tail


def innermost(raw: bytes) -> tuple[int, str]:
    part = parse_structure(raw)
    depth = 0
    while part.children:
        part = part.children[0]
        depth += 1
    return depth, f"{part.main_type}/{part.subtype}"


def test_a_multipart_98_levels_down_is_still_split() -> None:
    assert innermost(nested(99)) == (99, "text/plain")


def test_a_multipart_99_levels_down_is_an_opaque_octet_stream() -> None:
    assert innermost(nested(100)) == (99, "application/octet-stream")
    assert innermost(nested(150)) == (99, "application/octet-stream")
