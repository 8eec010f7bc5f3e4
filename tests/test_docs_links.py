"""Every relative link in README.md and docs/ leads somewhere.

The README is a front page that sends readers into docs/, and code comments
cite headings of docs/dovecot-reference.md; a page renamed or a heading
reworded must not leave a link pointing at nothing. Anchors are checked the
way GitHub makes them from headings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def test_every_relative_link_resolves_to_a_file_and_anchor() -> None:
    broken = [
        f"{page.relative_to(ROOT)}: {target} ({reason})"
        for page in PAGES
        for target in links(page)
        if (reason := why_broken(page, target)) is not None
    ]
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken)


def test_the_checker_finds_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A `code` heading, too\n\nSee [x](other.md), [y](#nope).\n")
    (tmp_path / "other.md").write_text("# Other\n")
    assert why_broken(page, "other.md") is None
    assert why_broken(page, "#a-code-heading-too") is None
    assert why_broken(page, "missing.md") == "no such file"
    assert why_broken(page, "#nope") == "no heading makes anchor 'nope'"
    assert why_broken(page, "other.md#other") is None


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The mail_user object", "the-mail_user-object"),
        ("Expunge, MOVE and DELETE", "expunge-move-and-delete"),
        ("`mailpush deliver`", "mailpush-deliver"),
        ("At-least-once: `http_resend = yes`", "at-least-once-http_resend--yes"),
    ],
)
def test_anchors_are_made_as_github_makes_them(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor


def links(page: Path) -> list[str]:
    """Relative link targets in a page, leaving out code, which only shows links."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", page.read_text(encoding="utf-8")))
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("    "))
    return [target for target in _LINK.findall(prose) if not _SCHEME.match(target)]


def why_broken(page: Path, target: str) -> str | None:
    path_part, _, anchor = target.partition("#")
    file = (page.parent / path_part).resolve() if path_part else page
    if not file.exists():
        return "no such file"
    if anchor and file.suffix == ".md" and anchor not in anchors(file):
        return f"no heading makes anchor {anchor!r}"
    return None


def anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    made: set[str] = set()
    for heading in _HEADING.findall(text):
        anchor = github_anchor(heading)
        # GitHub numbers repeated headings: name, name-1, name-2, ...
        unique, n = anchor, 0
        while unique in made:
            n += 1
            unique = f"{anchor}-{n}"
        made.add(unique)
    return made


def github_anchor(heading: str) -> str:
    """Lower case, punctuation dropped (but `-` and `_`), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
