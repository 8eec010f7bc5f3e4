"""Strings between Python and Lua, shared by the engine and the API.

States are created with `encoding=None`, so every Lua string reaches Python
as bytes and must be handed back as bytes: scripts handle arbitrary bytes and
a payload need not be UTF-8. These two conversions are the only place that
decides how text crosses.
"""

from __future__ import annotations

__all__ = ["lua_bytes", "text"]


def text(value: object) -> str:
    """A Lua string (bytes) as text for logs and Python APIs."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def lua_bytes(value: str) -> bytes:
    """Text for Lua: UTF-8, with undecodable header bytes (surrogate escapes) restored."""
    try:
        return value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape" if _escapes_only(value) else "replace")


def _escapes_only(value: str) -> bool:
    """Whether every surrogate in `value` is one `surrogateescape` made (U+DC80–U+DCFF)."""
    return all(0xDC80 <= ord(c) <= 0xDCFF for c in value if 0xD800 <= ord(c) <= 0xDFFF)
