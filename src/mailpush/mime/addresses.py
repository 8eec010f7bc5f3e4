"""The first address of a From/To header, split the way Dovecot's push plugin splits it.

Dovecot parses at most one address with lib-mail's RFC 5322 parser and
exposes `mailbox@domain` (or just `mailbox` when there is no domain) and the
RFC 2047-decoded display name. Its quirks are kept because receivers see
them: a comment stands in for a missing phrase (`a@b (Name)` → `Name`), a
group yields its name and no address, and `John Smith` without brackets is
read as a display name with no address.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from mailpush.mime.headers import decode_encoded_words

__all__ = ["FirstAddress", "parse_first_address", "split_address_list"]

#: Comments (parentheses) an address header may hold before they stop being read as
#: comments; far above what mail uses.
MAX_COMMENTS = 30

_SPECIAL_ATEXT = frozenset("!#$%&'*+-/=?^_`{|}~")


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


def _is_atext(char: str) -> bool:
    # lib-mail counts 8-bit characters as atext so raw UTF-8 names parse.
    if char.isascii():
        return char.isalnum() or char in _SPECIAL_ATEXT
    return True


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
            elif _is_atext(char) or char == ".":
                words.append(self.dot_atom())
            else:
                break
        return " ".join(words)

    # --- lexical ---------------------------------------------------------------

    def dot_atom(self) -> str:
        start = self.pos
        text = self.text
        while self.pos < len(text) and (_is_atext(text[self.pos]) or text[self.pos] == "."):
            self.pos += 1
        word = text[start : self.pos]
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
