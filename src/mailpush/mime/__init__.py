"""Parsing a message once: header fields, first addresses, date, snippet, calendar detection.

`summarize(raw)` is the entry point the store uses at save time; it never
raises on malformed mail and does bounded work on huge messages.
"""

from mailpush.mime.summary import MessageSummary, summarize

__all__ = ["MessageSummary", "summarize"]
