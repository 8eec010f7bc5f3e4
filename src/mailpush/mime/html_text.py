"""HTML to plain text for the snippet, a port of lib-mail's mail-html2text.

This is deliberately not a real HTML parser: the snippet must match the
text Dovecot derives, including its rough edges. Every tag becomes one
space (inline ones too, so `Hello&nbsp;<b>HTML` reads `Hello\\u00a0 HTML`),
`<style>`, `<script>`, comments and CDATA markers vanish, text inside
`<blockquote>` is dropped (observed on 2.3.19), entities are decoded and a
broken one loses its `&`. Input arrives in chunks; a construct cut by a
chunk end waits for the next chunk, and whatever is still waiting when the
input ends is dropped, as in Dovecot.
"""

from __future__ import annotations

import html.entities
import re

__all__ = ["HtmlToText"]

_WHITESPACE = " \t\r\n"
_TEXT_STOP = re.compile(r"[<&]")
_TAG_STOP = re.compile(r"[\"'>]")
_ENTITIES: dict[str, int] = {**html.entities.name2codepoint, "apos": 0x27}
_ENTITIES_FOLDED: dict[str, int] = {}
for _name, _code in _ENTITIES.items():
    _ENTITIES_FOLDED.setdefault(_name.lower(), _code)
_HEX = frozenset("0123456789abcdefABCDEF")

_TEXT, _TAG, _TAG_DQ, _TAG_DQ_ESC, _TAG_SQ, _TAG_SQ_ESC = range(6)
_COMMENT, _COMMENT_END, _SCRIPT, _STYLE, _CDATA = range(6, 11)


class HtmlToText:
    """Feed decoded HTML text; get the text Dovecot's html2text would emit for it."""

    def __init__(self) -> None:
        self._state = _TEXT
        self._pending = ""
        self._quote_level = 0
        self._last = ""

    def feed(self, data: str) -> str:
        text = self._pending + data
        out: list[str] = []
        consumed = self._parse(text, out)
        self._pending = text[consumed:]
        result = "".join(out)
        if result:
            self._last = result[-1]
        return result

    def _space(self, out: list[str]) -> None:
        last = out[-1][-1] if out and out[-1] else self._last
        if last and last != " ":
            out.append(" ")

    def _emit(self, out: list[str], text: str) -> None:
        if text and self._quote_level == 0:
            out.append(text)

    def _parse(self, data: str, out: list[str]) -> int:
        """Consume as much of `data` as can be decided; return how much was consumed."""
        size = len(data)
        i = 0
        while i < size:
            state = self._state
            if state == _TEXT:
                match = _TEXT_STOP.search(data, i)
                if match is None:
                    self._emit(out, data[i:])
                    return size
                self._emit(out, data[i : match.start()])
                i = match.start()
                if data[i] == "<":
                    step = self._tag_name(data, i + 1)
                else:
                    step = self._entity(data, i + 1, out)
                if step == 0:
                    return i
                i += step
            elif state == _TAG:
                match = _TAG_STOP.search(data, i)
                if match is None:
                    return size
                i = match.start()
                char = data[i]
                if char == '"':
                    self._state = _TAG_DQ
                elif char == "'":
                    self._state = _TAG_SQ
                else:
                    self._state = _TEXT
                    self._space(out)
                i += 1
            elif state in (_TAG_DQ, _TAG_SQ):
                quote = '"' if state == _TAG_DQ else "'"
                while i < size and data[i] not in (quote, "\\"):
                    i += 1
                if i < size:
                    if data[i] == quote:
                        self._state = _TAG
                    else:
                        self._state = _TAG_DQ_ESC if state == _TAG_DQ else _TAG_SQ_ESC
                    i += 1
            elif state in (_TAG_DQ_ESC, _TAG_SQ_ESC):
                self._state = _TAG_DQ if state == _TAG_DQ_ESC else _TAG_SQ
                i += 1
            elif state == _COMMENT:
                dash = data.find("-", i)
                while dash >= 0 and dash + 1 < size and data[dash + 1] != "-":
                    dash = data.find("-", dash + 1)
                if dash < 0:
                    return size
                if dash + 1 == size:
                    return dash
                self._state = _COMMENT_END
                i = dash + 2
            elif state == _COMMENT_END:
                char = data[i]
                if char == ">":
                    self._state = _TEXT
                elif char not in _WHITESPACE:
                    self._state = _COMMENT
                i += 1
            elif state in (_SCRIPT, _STYLE):
                closer = "</script>" if state == _SCRIPT else "</style>"
                while True:
                    lt = data.find("<", i)
                    if lt < 0:
                        return size
                    avail = min(size - lt, len(closer))
                    if data[lt : lt + avail].lower() == closer[:avail]:
                        if avail < len(closer):
                            return lt
                        self._space(out)
                        self._state = _TEXT
                        i = lt + len(closer)
                        break
                    i = lt + 1
            else:  # CDATA: text is kept up to "]]>"
                bracket = data.find("]", i)
                while bracket >= 0:
                    avail = min(size - bracket, 3)
                    if data[bracket : bracket + avail] == "]]>"[:avail]:
                        break
                    bracket = data.find("]", bracket + 1)
                if bracket < 0:
                    self._emit(out, data[i:])
                    return size
                self._emit(out, data[i:bracket])
                if size - bracket < 3:
                    return bracket
                self._state = _TEXT
                i = bracket + 3
        return size

    def _tag_name(self, data: str, start: int) -> int:
        """Look at what follows "<"; return how many characters from "<" to skip (0: need more)."""
        rest = data[start : start + 12]
        size = len(data) - start
        lowered = rest.lower()
        if rest.startswith("!--"):
            self._state = _COMMENT
            return 4
        if size >= 7 and lowered.startswith("script") and _ends_name(rest[6]):
            self._state = _SCRIPT
            return 8
        if size >= 6 and lowered.startswith("style") and _ends_name(rest[5]):
            self._state = _STYLE
            return 7
        if size >= 8 and lowered.startswith("![cdata["):
            self._state = _CDATA
            return 9
        if size >= 11 and lowered.startswith("blockquote") and _ends_name(rest[10]):
            self._quote_level += 1
            self._state = _TAG
            return 1
        if self._quote_level > 0 and size >= 12 and lowered == "/blockquote>":
            self._quote_level -= 1
            self._state = _TAG
            return 1
        if size < 12 and not any(_ends_name(char) for char in rest):
            return 0
        self._state = _TAG
        return 1

    def _entity(self, data: str, start: int, out: list[str]) -> int:
        """Decode the entity after "&"; return characters to skip from "&" (0: need more)."""
        size = len(data)
        i = start
        while i < size:
            char = data[i]
            if char in _WHITESPACE or i - start >= 10:
                return 1  # broken entity: only the "&" goes
            if char == ";":
                break
            i += 1
        if i == size:
            return 0
        code = _entity_code(data[start:i])
        if code is not None:
            out.append(_code_point(code))
        return i - start + 2


def _ends_name(char: str) -> bool:
    return char in _WHITESPACE or char == ">"


def _entity_code(name: str) -> int | None:
    code = _ENTITIES.get(name)
    if code is None:
        code = _ENTITIES_FOLDED.get(name.lower())
    if code is not None:
        return code
    if name.startswith("#x"):
        digits = name[2:]
        if digits and len(digits) <= 8 and all(char in _HEX for char in digits):
            return int(digits, 16)
        return None
    if name.startswith("#"):
        digits = name[1:]
        if digits and digits.isascii() and digits.isdigit() and int(digits) <= 0xFFFFFFFF:
            return int(digits)
    return None


def _code_point(code: int) -> str:
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return chr(code)
