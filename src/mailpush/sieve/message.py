"""What Sieve tests look at: the header fields, addresses, body parts and envelope.

Built once per delivery and shared by every script of the sequence. Only
the header block is read up front; the MIME body is parsed the first time a
`body` test asks for it, so a plain header filter never walks a large
attachment.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mime.addresses import split_address_list
from ..mime.charsets import decode_text
from ..mime.headers import decode_encoded_words, find_body_start, split_header_fields
from ..mime.html_text import HtmlToText
from ..mime.structure import MimePart, parse_structure
from ..mime.transfer import decode_transfer
from .script import AddressPart, BodyTransform

__all__ = ["Envelope", "SieveMessage", "address_part"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP/LMTP envelope: `sender` is "" for the null sender `<>`."""

    sender: str
    recipient: str


class SieveMessage:
    """One message as the tests of every script in a delivery see it."""

    def __init__(self, raw: bytes, envelope: Envelope) -> None:
        self.raw = raw
        self.envelope = envelope
        header_end, self._body_start = find_body_start(raw)
        self._fields = _split_fields(raw[:header_end])
        self._decoded: dict[str, list[str]] = {}
        self._parsed: MimePart | None = None

    @property
    def size(self) -> int:
        return len(self.raw)

    def has_header(self, name: str) -> bool:
        return name.lower() in self._fields

    def header_values(self, name: str) -> list[str]:
        """Every field called `name`: unfolded, trimmed and RFC 2047-decoded (RFC 5228 §5.7)."""
        key = name.lower()
        cached = self._decoded.get(key)
        if cached is None:
            cached = [decode_encoded_words(value) for value in self._fields.get(key, [])]
            self._decoded[key] = cached
        return cached

    def addresses(self, name: str) -> list[str]:
        """The `local@domain` addresses in every field called `name` (group names skipped)."""
        found: list[str] = []
        for _display, address in split_address_list(self._fields.get(name.lower(), [])):
            if address:
                found.append(address)
        return found

    def body_texts(self, transform: BodyTransform, content_types: tuple[str, ...]) -> list[str]:
        """The texts a `body` test compares (RFC 5173), one per MIME part for `:content`/`:text`."""
        if transform == "raw":
            return [self.raw[self._body_start :].decode("utf-8", errors="replace")]
        texts: list[str] = []
        for part in self._structure().leaves():
            content_type = part.effective_type
            if transform == "text":
                if content_type.partition("/")[0] != "text":
                    continue
            elif not any(_type_matches(content_type, wanted) for wanted in content_types):
                continue
            texts.append(_part_text(self.raw, part, html_to_text=transform == "text"))
        return texts

    def _structure(self) -> MimePart:
        if self._parsed is None:
            self._parsed = parse_structure(self.raw)
        return self._parsed


def address_part(address: str, part: AddressPart) -> str:
    """`:localpart` is before the last `@`, `:domain` after it (empty for a bare local part)."""
    if part == "all":
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        return address if part == "localpart" else ""
    return local if part == "localpart" else domain


def _split_fields(block: bytes) -> dict[str, list[str]]:
    """Lowercased field name → unfolded, trimmed values, in message order."""
    fields: dict[str, list[str]] = {}
    for name, value in split_header_fields(block):
        fields.setdefault(name, []).append(value.decode("utf-8", errors="replace"))
    return fields


def _type_matches(content_type: str, wanted: str) -> bool:
    if not wanted:
        return True
    if "/" in wanted:
        return content_type == wanted
    return content_type.partition("/")[0] == wanted


def _part_text(raw: bytes, part: MimePart, *, html_to_text: bool) -> str:
    data = decode_transfer(part.transfer_encoding, raw[part.body_start : part.body_end])
    content_type = part.effective_type
    if content_type.partition("/")[0] != "text":
        return data.decode("utf-8", errors="replace")
    text = decode_text(data, part.charset)
    if html_to_text and content_type == "text/html":
        return HtmlToText().feed(text)
    return text
