"""Every relative link in README.md and docs/ leads somewhere, and so does every citation.

The README is a front page that sends readers into docs/, and code comments
cite headings of docs/dovecot-reference.md; a page renamed or a heading
reworded must not leave a link pointing at nothing. Anchors are checked the
way GitHub makes them from headings.

Comments, docstrings and tests cite what they rely on as
`docs/<page>.md#<heading-anchor>`, so a fresh clone holds everything a
reader is sent to. The notes the behaviour was first taken from live outside
the repository; a citation of them (by their file names or section numbers)
would send a reader nowhere, so none may come back.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
#: Where citations are looked for: the code, its tests and benchmarks, and the docs.
CITING_TREES = ("src", "tests", "bench", "docs", "README.md")
#: Generated or binary content, which cites nothing.
_NOT_CITING = {"__pycache__", ".mypy_cache", ".ruff_cache"}
#: How the outside notes used to be cited; each piece is split so that this file does
#: not cite them itself.
OUTSIDE_CITATIONS = ("dovecot-" "observed", "dovecot-" "push.md", "spec " "§", "shared/" "spec")
#: (file relative to the root, citation) pairs allowed to stay, each with its reason.
ALLOWED_OUTSIDE_CITATIONS: dict[tuple[str, str], str] = {}

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: `docs/<page>.md` with an optional `#anchor`, at the start of a path (also `../docs/`).
_CITATION = re.compile(r"(?:(?<=\.\./)|(?<![\w/.\-]))docs/(?:[\w-]+/)*[\w.-]+\.md(?:#[\w-]+)?")


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


def test_every_docs_citation_in_code_tests_and_docs_names_a_page_and_heading() -> None:
    # A citation is a path from the repository root, as if linked from the README.
    broken = [
        f"{file.relative_to(ROOT)}:{line}: {citation} ({reason})"
        for file, text in citing_files()
        for line, citation in citations(text)
        if (reason := why_broken(ROOT / "README.md", citation)) is not None
    ]
    assert not broken, "citations that lead nowhere:\n" + "\n".join(broken)


def test_nothing_cites_notes_that_are_outside_the_repository() -> None:
    found = [
        f"{relative}:{line}: {word!r}"
        for file, text in citing_files()
        for line, content in enumerate(text.splitlines(), 1)
        for word in OUTSIDE_CITATIONS
        if word in content
        and ((relative := str(file.relative_to(ROOT))), word) not in ALLOWED_OUTSIDE_CITATIONS
    ]
    assert not found, (
        "cite a heading of docs/dovecot-reference.md (or another page of docs/) instead,"
        " adding a section in our own words where none fits:\n" + "\n".join(found)
    )


def test_the_citation_finder_takes_docs_paths_only_where_a_path_starts() -> None:
    text = (
        "see docs/" "dovecot-reference.md#rolled-back-transactions, ../docs/" "push.md.\n"
        "not tests/docs/" "x.md, mydocs/" "y.md or docs/" "drivers/*.md;\n"
        "docs/" "drivers/ox.md#options\n"
    )
    assert citations(text) == [
        (1, "docs/" "dovecot-reference.md#rolled-back-transactions"),
        (1, "docs/" "push.md"),
        (3, "docs/" "drivers/ox.md#options"),
    ]
    assert why_broken(ROOT / "README.md", "docs/" "dovecot-reference.md#no-such-heading") == (
        "no heading makes anchor 'no-such-heading'"
    )


def citing_files() -> list[tuple[Path, str]]:
    """Every text file that may cite docs: bytes that are not UTF-8 text cite nothing."""
    found: list[tuple[Path, str]] = []
    for name in CITING_TREES:
        top = ROOT / name
        for file in sorted([top] if top.is_file() else top.rglob("*")):
            parts = file.relative_to(ROOT).parts
            if not file.is_file() or any(
                part in _NOT_CITING or part.endswith(".egg-info") for part in parts
            ):
                continue
            data = file.read_bytes()
            if b"\0" in data:
                continue
            try:
                found.append((file, data.decode("utf-8")))
            except UnicodeDecodeError:
                continue
    return found


def citations(text: str) -> list[tuple[int, str]]:
    """(line number, citation) for each `docs/….md[#anchor]` in a text."""
    return [
        (number, match.group(0))
        for number, line in enumerate(text.splitlines(), 1)
        for match in _CITATION.finditer(line)
    ]


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
