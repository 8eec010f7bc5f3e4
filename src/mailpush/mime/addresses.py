"""Address headers read the way Dovecot's lib-mail (message-address.c) reads them.

`parse_first_address`: the first address of a From/To header, as Dovecot's
push plugin splits it. Dovecot parses at most one address and exposes
`mailbox@domain` (or just `mailbox` when there is no domain) and the RFC
2047-decoded display name. Its quirks are kept because receivers see them:
a comment stands in for a missing phrase (`a@b (Name)` → `Name`), a group
yields its name and no address, and `John Smith` without brackets is read as
a display name with no address.

`parse_address_list`: a whole header as IMAP's ENVELOPE and SEARCH see it,
with Dovecot's "fill missing" rules: every group as a start entry (its name)
and an end entry, source routes (`<@relay:user@domain>`) kept, comments and
folding dropped (`<user (c)@ (c) domain.org>` is `user@domain.org`), absent
parts named MISSING_MAILBOX / MISSING_DOMAIN. Both parsers scan each address
a bounded number of times and hold no recursion, so a hostile header costs
time linear in its length.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from mailpush.mime.headers import decode_encoded_words
from mailpush.mime.rfc822_chars import atext_end, is_atext

__all__ = [
    "FirstAddress",
    "ListedAddress",
    "format_address_list",
    "parse_address_list",
    "parse_first_address",
    "split_address_list",
]

#: Comments (parentheses) an address header may hold before they stop being read as
#: comments; far above what mail uses.
MAX_COMMENTS = 30


@dataclass(frozen=True, slots=True)
class FirstAddress:
    """`address` is "" for a group or when there is none; `display_name` is decoded UTF-8."""

    address: str
    display_name: str


def parse_first_address(value: str | None) -> FirstAddress:
    """Split the first address out of a raw header value; never raises."""
    if value is None:
        return FirstAddress("", "")
    try:
        return _AddressParser(value).first()
    except Exception:  # a parser bug must not fail a delivery
        return FirstAddress("", "")


@dataclass(frozen=True, slots=True)
class ListedAddress:
    """One entry of an address list: IMAP ENVELOPE's (name route mailbox domain).

    A group is two entries: its start (`mailbox` is the group name, `domain`
    None) and its end (all four None).
    """

    name: str | None
    route: str | None
    mailbox: str | None
    domain: str | None

    @property
    def is_group_marker(self) -> bool:
        return self.domain is None


def parse_address_list(value: str) -> list[ListedAddress]:
    """Every address (and group) of a raw header value; parsing stops at garbage."""
    try:
        return _ListParser(value).addresses()
    except Exception:  # a parser bug must not fail a FETCH or SEARCH
        return []


def format_address_list(addresses: list[ListedAddress]) -> str:
    """The list written back as Dovecot writes it for SEARCH FROM/TO/CC/BCC to match.

    `"Quoted Name" <user@domain>`, `<user@domain>` without a name, a route as
    `<@relay:user@domain>`, a group as `name: <a@b>, <c@d>;` (empty: `name:;`).
    """
    out: list[str] = []
    first = True
    in_group = False
    for entry in addresses:
        if not first:
            out.append(", ")
        first = False
        if entry.domain is None:
            if not in_group:
                group = entry.mailbox or ""
                out.append((_phrase_text(group) if group else '""') + ": ")
                first = True
            else:
                if out[-1] == ", ":
                    out.pop()
                elif out[-1].endswith(": "):
                    out[-1] = out[-1][:-1]
                out.append(";")
            in_group = not in_group
            continue
        mailbox = entry.mailbox or ""
        if entry.name is not None:
            out.append(_phrase_text(entry.name))
        if entry.route is not None or mailbox or entry.domain:
            if entry.name:
                out.append(" ")
            route = f"{entry.route}:" if entry.route is not None else ""
            local = _quoted_if_needed(mailbox, escape_dot=False) if mailbox else '""'
            domain = f"@{entry.domain}" if entry.domain else ""
            out.append(f"<{route}{local}{domain}>")
    return "".join(out)


def _phrase_text(text: str) -> str:
    # An encoded word may not sit inside quotes: Dovecot leaves such a name bare.
    return text if "=?" in text else _quoted_if_needed(text, escape_dot=True)


def _quoted_if_needed(text: str, escape_dot: bool) -> str:
    if all(is_atext(c) or (c == "." and not escape_dot) for c in text):
        return text
    escaped = "".join("\\" + c if c in "\"\\'" else c for c in text)
    return f'"{escaped}"'


def split_address_list(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of whole address headers, as `email.utils.getaddresses`.

    getaddresses recurses once per nested comment, so a header of thousands of
    `(` raised RecursionError wherever it was read (ENVELOPE, Sieve `address`).
    Past `MAX_COMMENTS` parentheses are read as spaces: a hostile header then
    yields its addresses without its comments, and nothing raises.
    """
    defused = [
        value.replace("(", " ").replace(")", " ") if value.count("(") > MAX_COMMENTS else value
        for value in values
    ]
    return email.utils.getaddresses(defused)


class _AddressParser:
    """A cursor over the header value with lib-mail's rfc822-parser primitives."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.last_comment = ""

    def first(self) -> FirstAddress:
        self.skip_cfws()
        if self.at_end():
            return FirstAddress("", "")
        start = self.pos
        group = self.try_group()
        if group is not None:
            return FirstAddress("", decode_encoded_words(group))
        self.pos = start
        return self.mailbox()

    # --- grammar ---------------------------------------------------------------

    def try_group(self) -> str | None:
        phrase = self.phrase()
        if not phrase or self.peek() != ":":
            return None
        return phrase

    def mailbox(self) -> FirstAddress:
        start = self.pos
        phrase = self.phrase()
        if self.peek() == "<":
            self.pos += 1
            address = self.angle_addr()
            return FirstAddress(address, decode_encoded_words(phrase) if phrase else "")
        self.pos = start
        return self.addr_spec()

    def angle_addr(self) -> str:
        self.skip_cfws()
        if self.peek() == "@":
            # obsolete source route: <@relay,@relay:local@domain>
            colon = self.text.find(":", self.pos)
            close = self.text.find(">", self.pos)
            if colon >= 0 and (close < 0 or colon < close):
                self.pos = colon + 1
                self.skip_cfws()
        local = self.local_part()
        domain = ""
        if self.peek() == "@":
            self.pos += 1
            self.skip_cfws()
            domain = self.domain()
        return _join_address(local, domain)

    def addr_spec(self) -> FirstAddress:
        self.last_comment = ""
        local = self.local_part()
        if self.peek() == "@":
            self.pos += 1
            self.skip_cfws()
            domain = self.domain()
            return FirstAddress(_join_address(local, domain), self.comment_name())
        if self.last_comment:
            return FirstAddress(local, self.comment_name())
        # "user" alone is a mailbox; "John Smith" is a display name without address.
        rest = self.phrase()
        if rest:
            name = f"{local} {rest}" if local else rest
            return FirstAddress("", decode_encoded_words(name))
        return FirstAddress(local, "")

    def comment_name(self) -> str:
        return decode_encoded_words(self.last_comment) if self.last_comment else ""

    def local_part(self) -> str:
        if self.peek() == '"':
            return self.quoted_string()
        return self.dot_atom()

    def domain(self) -> str:
        if self.peek() == "[":
            close = self.text.find("]", self.pos)
            end = len(self.text) if close < 0 else close + 1
            literal = self.text[self.pos : end]
            self.pos = end
            self.skip_cfws()
            return literal
        return self.dot_atom()

    def phrase(self) -> str:
        """Words (atoms, dots, quoted strings) joined by single spaces, comments skipped."""
        words: list[str] = []
        if self.peek() == ".":
            return ""
        while not self.at_end():
            char = self.text[self.pos]
            if char == '"':
                words.append(self.quoted_string())
            elif is_atext(char) or char == ".":
                words.append(self.dot_atom())
            else:
                break
        return " ".join(words)

    # --- lexical ---------------------------------------------------------------

    def dot_atom(self) -> str:
        start = self.pos
        end = atext_end(self.text, start, dots=True)
        self.pos = end
        word = self.text[start:end]
        self.skip_cfws()
        return word

    def quoted_string(self) -> str:
        text = self.text
        self.pos += 1
        out: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                self.skip_cfws()
                return "".join(out)
            if char == "\\" and self.pos + 1 < len(text):
                self.pos += 1
                out.append(text[self.pos])
            elif char not in "\r\n":  # folding inside quotes: the line break goes
                out.append(char)
            self.pos += 1
        return "".join(out)

    def skip_cfws(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n":
                self.pos += 1
            elif char == "(":
                self.comment()
            else:
                break

    def comment(self) -> None:
        text = self.text
        depth = 0
        out: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(text):
                out.append(text[self.pos])
                self.pos += 1
                continue
            if char == "(":
                depth += 1
                if depth == 1:
                    continue
            elif char == ")":
                depth -= 1
                if depth == 0:
                    break
            if char not in "\r\n":
                out.append(char)
        self.last_comment = "".join(out)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)


def _join_address(local: str, domain: str) -> str:
    if domain:
        return f"{local}@{domain}"
    return local


class _ListParser(_AddressParser):
    """lib-mail's address-list grammar with "fill missing" (what ENVELOPE shows)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.found: list[ListedAddress] = []

    def addresses(self) -> list[ListedAddress]:
        self.skip_cfws()
        while not self.at_end():
            start = self.pos
            if not self.group():
                self.pos = start
                self.mailbox_entry()
            if self.peek() != ",":
                break  # the end, or garbage after an address: Dovecot stops there too
            self.pos += 1
            self.skip_cfws()
        return self.found

    def group(self) -> bool:
        name = self.phrase()
        if not name or self.peek() != ":":
            return False
        self.pos += 1
        self.skip_cfws()
        self.found.append(ListedAddress(None, None, name, None))
        if not self.at_end() and self.peek() != ";":
            while True:
                before = self.pos
                self.mailbox_entry()
                if self.peek() != "," or self.pos == before:
                    break
                self.pos += 1
                self.skip_cfws()
        if self.peek() == ";":
            self.pos += 1
            self.skip_cfws()
        self.found.append(ListedAddress(None, None, None, None))
        return True

    def mailbox_entry(self) -> None:
        start = self.pos
        phrase = self.phrase()
        if self.peek() == "<":
            name, route, mailbox, domain = self.name_addr(phrase or None)
        else:
            self.pos = start
            name, route, mailbox, domain = self.list_addr_spec()
        self.found.append(
            ListedAddress(name, route, mailbox if mailbox is not None else "MISSING_MAILBOX",
                          domain or "MISSING_DOMAIN")
        )  # fmt: skip

    def name_addr(
        self, name: str | None
    ) -> tuple[str | None, str | None, str | None, str | None]:
        self.pos += 1  # "<"
        self.skip_cfws()
        route: str | None = None
        if self.peek() == "@":
            route = self.route()
            if self.peek() == ":":
                self.pos += 1
            else:
                route = "INVALID_ROUTE"
            self.skip_cfws()
        mailbox: str | None = None
        domain: str | None = None
        if self.peek() not in (">", ""):
            mailbox = self.cfws_dot_atom_or_quoted()
            if self.peek() == "@":
                domain = self.after_at()
        if self.peek() != ">":
            return name, route, mailbox, "SYNTAX_ERROR"
        self.pos += 1
        self.skip_cfws()
        return name, route, mailbox, domain

    def route(self) -> str:
        """obs-route's domain list: `@a,@b` (before the `:`)."""
        hops: list[str] = []
        while self.peek() == "@":
            hops.append("@" + self.after_at())
            while self.peek() == ",":
                self.pos += 1
                self.skip_cfws()
        return ",".join(hops)

    def list_addr_spec(self) -> tuple[str | None, str | None, str | None, str | None]:
        self.last_comment = ""
        quoted = self.peek() == '"'
        mailbox: str | None = self.cfws_dot_atom_or_quoted() or (None if not quoted else "")
        domain: str | None = None
        name: str | None = None
        if self.peek() == "@":
            domain = self.after_at()
            if self.last_comment:
                name = self.last_comment
            return name, None, mailbox, domain
        if self.last_comment:
            return self.last_comment, None, mailbox, None
        # "user" alone is a mailbox; "John Smith" is a display name without address.
        rest = self.phrase()
        if rest:
            return f"{mailbox} {rest}" if mailbox else rest, None, None, None
        if quoted:
            return mailbox, None, None, None
        return None, None, mailbox, ""

    def after_at(self) -> str:
        self.pos += 1  # "@"
        self.skip_cfws()
        return self.domain() if self.peek() == "[" else self.cfws_dot_atom()

    def cfws_dot_atom_or_quoted(self) -> str:
        if self.peek() == '"':
            return self.quoted_string()
        return self.cfws_dot_atom()

    def cfws_dot_atom(self) -> str:
        """dot-atom allowing comments and folding around the dots (RFC 822 did)."""
        text = self.text
        parts: list[str] = []
        while True:
            start, self.pos = self.pos, atext_end(text, self.pos)
            parts.append(text[start : self.pos])
            self.skip_cfws()
            if self.peek() != ".":
                return ".".join(parts)
            self.pos += 1
            self.skip_cfws()
