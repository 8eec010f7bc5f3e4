"""RFC 5321 envelope paths (`MAIL FROM:<…>`, `RCPT TO:<…>`): read, or refused with why.

aiosmtpd reads these with the stdlib's RFC 5322 *header* parser, which
accepts what no MTA sends and an LMTP server should refuse: a path without
its closing `>` (`<bob@example.org`), a space in an unquoted local part
(`<bad address@example.org>`), a path without angle brackets, text glued to
the `>`. A sender read that way reaches Sieve (`envelope :from`) and the
delivery log as something no MTA meant. Dovecot 2.3.19 refuses each with
`501 5.5.4 Invalid FROM: <why>` (or `Invalid TO:`); so does this module
(tests/dovecot/test_lmtp_path_differential.py sends the same paths to both).

Where Dovecot's own parser is lenient, this one is too, since senders that
Dovecot takes must keep being taken: local parts with leading, trailing or
doubled dots (`a..b@example.org`, which some mobile carriers hand out), a
hyphen at either end of a domain label, `_` in a domain, source routes
(`<@relay.example:bob@example.org>`, read and dropped as RFC 5321 §4.1.1.3
asks), and a bare local part without a domain (what an MTA sends to an LMTP
whose users have none). Deliberately stricter than Dovecot's MAIL FROM (which
takes anything after the local part): the domain is checked as Dovecot
checks it on RCPT TO (no empty label, no second `@`, an address literal is
IPv4, `IPv6:…` or a `tag:value`). Non-ASCII is allowed in local parts and
domains here (RFC 6531); whether the transaction declared SMTPUTF8 is for
`server.address_problem` to decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EnvelopePath", "PathSyntaxError", "parse_path"]


class PathSyntaxError(ValueError):
    """The path is not RFC 5321 syntax; the message says what is wrong, for the reply."""


@dataclass(frozen=True, slots=True)
class EnvelopePath:
    """A path as read: its address (source route dropped; "" for `<>`) and what followed."""

    address: str
    #: The text after `>`: the ESMTP parameters, leading spaces removed.
    rest: str


def parse_path(text: str) -> EnvelopePath:
    """Read `<address> [parameters]`; PathSyntaxError says why it cannot be read."""
    match = _PATH.match(text)
    if match is not None:
        rest = match.group("rest")
        local = match.group("dotted")
        if local is None:
            local = _unquoted(match.group("quoted"))
        domain = match.group("domain")
        address = local if domain is None else f"{local}@{domain}"
        return EnvelopePath(address, rest.lstrip(" "))
    null = _NULL_PATH.match(text)
    if null is not None:
        return EnvelopePath("", null.group("rest").lstrip(" "))
    raise PathSyntaxError(_problem(text))


# atext (RFC 5322) and, for RFC 6531, any non-ASCII character.
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff"
#: A local part as Dovecot takes it: dots anywhere (see above).
_LOCAL = rf"[{_ATEXT}.]+"
_QUOTED_CHAR = r'(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])'
_QUOTED = rf'"{_QUOTED_CHAR}*"'
_LABEL = r"[A-Za-z0-9_\-\u0080-\U0010ffff]+"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
_LITERAL = rf"\[(?:{_IPV4}|[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+)\]"
_ROUTE = rf"@{_DOMAIN}(?:,@{_DOMAIN})*"
_PATH = re.compile(
    rf"<(?:{_ROUTE}:)?(?:(?P<dotted>{_LOCAL})|\"(?P<quoted>{_QUOTED_CHAR}*)\")"
    rf"(?:@(?P<domain>{_DOMAIN}|{_LITERAL}))?>(?P<rest>(?: .*)?)\Z",
    re.DOTALL,
)
_NULL_PATH = re.compile(r"<>(?P<rest>(?: .*)?)\Z", re.DOTALL)
_DOT_ATOM = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# The parts, for `_problem` to read one by one.
_ROUTE_PART = re.compile(_ROUTE)
_QUOTED_PART = re.compile(_QUOTED)
_QUOTED_OPENED = re.compile(rf'"{_QUOTED_CHAR}*')
_LOCAL_PART = re.compile(_LOCAL)
_DOMAIN_PART = re.compile(rf"{_DOMAIN}|{_LITERAL}")


def _unquoted(quoted: str) -> str:
    """A quoted local part as the address names it: bare when it needs no quotes
    (`"alice"` is alice, RFC 5321 §4.1.2), else quoted with only the escapes it needs."""
    content = _QUOTED_PAIR.sub(r"\1", quoted)
    if _DOT_ATOM.match(content):
        return content
    escaped = content.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _problem(text: str) -> str:
    """Why `text`, which is not a path, is not one: read part by part up to where it breaks."""
    if not text:
        return "Path is empty"
    if text[0] in " \t":
        return "Unexpected whitespace before path"
    if text[0] != "<":
        return "Missing '<' at beginning of path"
    if text.startswith("<>"):
        return "Invalid character in path"  # text right after the null path
    at = 1
    if text.startswith("@", at):
        route = _ROUTE_PART.match(text, at)
        if route is None:
            return "Missing domain after '@' in source route"
        if not text.startswith(":", route.end()):
            return "Missing ':' at end of source route"
        at = route.end() + 1
    if text.startswith('"', at):
        quoted = _QUOTED_PART.match(text, at)
        if quoted is None:
            opened = _QUOTED_OPENED.match(text, at)
            assert opened is not None
            if opened.end() >= len(text) or text[opened.end():] == "\\":
                return "Premature end of quoted string"
            return "Invalid character in quoted local part"
        at = quoted.end()
    else:
        local = _LOCAL_PART.match(text, at)
        if local is None:
            return "Invalid character in path" if text.startswith("<", at) else (
                "Invalid character in local part"
            )
        at = local.end()
    if text.startswith("@", at):
        domain = _DOMAIN_PART.match(text, at + 1)
        if domain is None:
            return _domain_problem(text[at + 1:])
        at = domain.end()
        if text.startswith(".", at):
            return "Empty sub-domain"
    elif at < len(text) and text[at] != ">":
        return "Invalid character in local part"
    if at >= len(text) or text[at] != ">":
        return "Missing '>' at end of path"
    return "Invalid character in path"  # text right after the `>`, with no space between


def _domain_problem(text: str) -> str:
    """Why the text after a local part's `@` is not a domain."""
    if not text or text[0] == ">":
        return "Missing domain after '@'"
    if text[0] == "[":
        return "Invalid address literal"
    if text[0] == ".":
        return "Empty sub-domain"
    return "Invalid character in domain"
