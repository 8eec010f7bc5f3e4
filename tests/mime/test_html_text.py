"""HTML to text, matching Dovecot's html2text."""

from __future__ import annotations

from mailpush.mime.html_text import HtmlToText


def convert(html: str) -> str:
    return HtmlToText().feed(html)


def test_inline_tag_becomes_a_space_after_nbsp() -> None:
    assert convert("Hello&nbsp;<b>HTML</b>") == "Hello\u00a0 HTML "


def test_style_script_and_comments_are_dropped() -> None:
    html = "<style>p{color:red}</style>a<script>x<y</script>b<!-- hidden -->c"
    assert convert(html) == "a bc"  # a comment, unlike a tag, leaves no space


def test_blockquote_text_is_dropped() -> None:
    assert convert("<p>kept</p><blockquote>gone <i>too</i></blockquote>end").split() == [
        "kept",
        "end",
    ]


def test_entities_are_decoded() -> None:
    assert convert("&amp; &lt;tag&gt; &eacute; &euro; &#65; &#x42;") == "& <tag> é € A B"


def test_broken_entity_loses_its_ampersand() -> None:
    assert convert("Tom & Jerry") == "Tom  Jerry"


def test_unknown_entity_vanishes() -> None:
    assert convert("a&bogus;b") == "ab"


def test_quoted_gt_inside_tag_does_not_end_it() -> None:
    assert convert('<a title="x>y">link</a>') == "link "  # no space at the very start


def test_construct_cut_between_chunks_waits_for_the_rest() -> None:
    converter = HtmlToText()
    out = converter.feed("one <scr") + converter.feed("ipt>hidden</script> two &am")
    out += converter.feed("p; three")
    assert out.split() == ["one", "two", "&", "three"]


def test_unfinished_tag_at_end_is_dropped() -> None:
    assert convert("text <b") == "text "


def test_cdata_text_is_kept() -> None:
    assert convert("<![CDATA[raw <text>]]>after") == "raw <text>after"
