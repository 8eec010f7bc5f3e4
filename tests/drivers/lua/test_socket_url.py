"""`require "socket.url"`: mailpush's own implementation of LuaSocket's URL module."""

from __future__ import annotations

from typing import Any

import pytest

from mailpush.drivers.lua.api.host_api import HostApi
from mailpush.drivers.lua.engine.runtime import new_runtime
from mailpush.drivers.lua.var_expand import UserVariables


@pytest.fixture(scope="module")
def url() -> Any:
    api = HostApi("alice", dict, UserVariables("alice"), "lua: alice: ")
    runtime = new_runtime("lua54", api.functions())
    return runtime.lua.eval(b'(require "socket.url")')


def test_escape_encodes_all_but_letters_digits_and_underscore_as_lowercase_hex(url: Any) -> None:
    assert url.escape(b"a b.c-~_Z9") == b"a%20b%2ec%2d%7e_Z9"
    assert url.escape("ü@".encode()) == b"%c3%bc%40"


def test_unescape_decodes_either_case(url: Any) -> None:
    assert url.unescape(b"a%20b%2Ec%2e%zz") == b"a b.c.%zz"


def test_parse_splits_every_part(url: Any) -> None:
    parsed = url.parse(b"http://user:pa%3ass@www.example.com:8080/path/to;params?q=1&b=2#frag")
    assert dict(parsed.items()) == {
        b"url": b"http://user:pa%3ass@www.example.com:8080/path/to;params?q=1&b=2#frag",
        b"scheme": b"http",
        b"authority": b"user:pa%3ass@www.example.com:8080",
        b"userinfo": b"user:pa%3ass",
        b"user": b"user",
        b"password": b"pa%3ass",
        b"host": b"www.example.com",
        b"port": b"8080",
        b"path": b"/path/to",
        b"params": b"params",
        b"query": b"q=1&b=2",
        b"fragment": b"frag",
    }


def test_parse_handles_ipv6_hosts_relative_urls_and_defaults(url: Any) -> None:
    v6 = url.parse(b"http://[::1]:80/")
    assert (v6[b"host"], v6[b"port"], v6[b"path"]) == (b"::1", b"80", b"/")
    relative = url.parse(b"/only/path?x=1")
    assert dict(relative.items()) == {b"url": b"/only/path?x=1", b"path": b"/only/path",
                                      b"query": b"x=1"}
    defaults = url.parse(b"//host/p", url.parse(b"https://ignored:8443/"))
    assert (defaults[b"scheme"], defaults[b"host"], defaults[b"port"]) == (
        b"https", b"host", b"8443"
    )
    assert url.parse(b"") == (None, b"invalid url")


def test_build_is_the_inverse_of_parse(url: Any) -> None:
    text = b"http://user:pass@www.example.com:8080/path/to;params?q=1#frag"
    assert url.build(url.parse(text)) == text


def test_build_escapes_path_segments_and_brackets_ipv6_hosts(url: Any) -> None:
    parts = url.parse(b"http://x/")
    parts[b"host"] = b"::1"
    parts[b"port"] = 8080
    parts[b"path"] = b"/a b/c~d"
    parts[b"authority"] = None
    assert url.build(parts) == b"http://[::1]:8080/a%20b/c~d"


def test_parse_path_and_build_path_round_trip(url: Any) -> None:
    parsed = url.parse_path(b"/a%20b/c/")
    assert [parsed[1], parsed[2]] == [b"a b", b"c"]
    assert (parsed[b"is_absolute"], parsed[b"is_directory"]) == (1, 1)
    assert url.build_path(parsed) == b"/a%20b/c/"
    assert url.build_path(parsed, True) == b"/a b/c/"


@pytest.mark.parametrize(
    ("relative", "resolved"),
    [
        # RFC 3986 section 5.4.1, base http://a/b/c/d;p?q (";x" aside: LuaSocket keeps
        # params apart from the path).
        ("g:h", "g:h"),
        ("g", "http://a/b/c/g"),
        ("./g", "http://a/b/c/g"),
        ("g/", "http://a/b/c/g/"),
        ("/g", "http://a/g"),
        ("//g", "http://g"),
        ("?y", "http://a/b/c/d;p?y"),
        ("g?y", "http://a/b/c/g?y"),
        ("#s", "http://a/b/c/d;p?q#s"),
        ("g#s", "http://a/b/c/g#s"),
        ("g;x", "http://a/b/c/g;x"),
        ("", "http://a/b/c/d;p?q"),
        (".", "http://a/b/c/"),
        ("./", "http://a/b/c/"),
        ("..", "http://a/b/"),
        ("../", "http://a/b/"),
        ("../g", "http://a/b/g"),
        ("../..", "http://a/"),
        ("../../", "http://a/"),
        ("../../g", "http://a/g"),
        ("g/./h/../i", "http://a/b/c/g/i"),
    ],
)
def test_absolute_resolves_references_as_rfc_3986_does(
    url: Any, relative: str, resolved: str
) -> None:
    assert url.absolute(b"http://a/b/c/d;p?q", relative.encode()) == resolved.encode()
