"""Push scripts written the way deployments write them send the same requests as under Dovecot.

Each script in fixtures/styles/ uses what admins' scripts load under Dovecot:
LuaSocket's `socket.http` (its simple form with a form-encoded body, and its
table form with an `ltn12` source, a sink and explicit headers), `cjson`,
Debian's `dkjson`, and a luarocks-style `JSON.lua` found through `LUA_PATH`.
Under the real Dovecot 2.3.19 they load Debian's lua-socket, lua-cjson and
lua-dkjson; under mailpush, its built-in equivalents and the same pure-Lua
files. The same LMTP delivery and IMAP APPEND go to both servers, and the
requests each endpoint received are compared: method, path and query bytes
as they arrived, content type, and body — bytes, except that JSON bodies are
compared as JSON, since Lua's table order varies from run to run even under
Dovecot.

Values that differ on purpose (docs/migrating-from-dovecot.md#lua-push-scripts): numbers are
Lua integers under mailpush (Dovecot: floats), so the scripts format them
with `%d` where they build text by hand; JSON compares `1` and `1.0` equal.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import shutil
import smtplib
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from bench.dovecot_instance import DovecotInstance, dovecot_binary

from mailpush.config import load_settings
from mailpush.server import MailpushServer

from ..conftest import free_port, imap_listener, lmtp_port, write_config
from ..support.http_receiver import HttpReceiver, ReceivedRequest

STYLES = Path(__file__).parent / "fixtures" / "styles"
LUALIB = STYLES / "lualib"
PLUGINS = "mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua"

MESSAGE = (
    b'From: "Sender, Jo" <jo.sender@example.net>\r\n'
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= & a/b \"quoted\"\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n"
    b"Message-ID: <styles.1@example.net>\r\n"
    b"\r\n"
    b"Hello Alice, 100% of this = body.\r\n"
)
APPENDED = (
    b"From: bob@example.org\r\n"
    b"Subject: appended\r\n"
    b"\r\n"
    b"appended body\r\n"
)


def _system_module(name: str) -> bool:
    """Dovecot 2.3.19 in Debian embeds Lua 5.4; pure-Lua modules live here for it."""
    return Path("/usr/share/lua/5.4", name).exists()


pytestmark = [
    pytest.mark.skipif(
        dovecot_binary() is None,
        reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
        "dovecot-lmtpd; .ci/run does this when run as root)",
    ),
    pytest.mark.skipif(
        not (_system_module("socket/http.lua") and _system_module("dkjson.lua")),
        reason="Debian's lua-socket, lua-cjson and lua-dkjson are not installed "
        "(apt-get install lua-socket lua-cjson lua-dkjson; .ci/run does this when run as root)",
    ),
]


# --- the same operations on either server ----------------------------------------------


def _operate(lmtp: int, imap: int, append: bool) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp) as client:
        refused = client.sendmail("jo.sender@example.net", ["alice"], MESSAGE)
        assert not refused, refused
    if append:
        connection = imaplib.IMAP4("127.0.0.1", imap)
        try:
            typ, data = connection.login("alice", "secret")
            assert typ == "OK", data
            typ, data = connection.append("INBOX", "(\\Seen $Label1)", None, APPENDED)
            assert typ == "OK", data
        finally:
            connection.logout()


async def _quiet(endpoint: HttpReceiver, expected: int) -> list[ReceivedRequest]:
    """The requests once `expected` have come and nothing more arrives for a moment."""
    await endpoint.wait_for(expected, timeout=15)
    count, since = len(endpoint.received), time.monotonic()
    while time.monotonic() - since < 0.3:
        await asyncio.sleep(0.05)
        if len(endpoint.received) != count:
            count, since = len(endpoint.received), time.monotonic()
    return list(endpoint.received)


async def under_dovecot(
    script: Path, expected: int, append: bool, lua_path: bool
) -> list[ReceivedRequest]:
    endpoint = HttpReceiver()
    await endpoint.start()
    settings: dict[str, str] = {}
    library: Path | None = None
    if lua_path:
        # Dovecot's mail processes run as `nobody` and see only the environment
        # Dovecot imports: a world-readable copy, named by import_environment.
        library = Path(tempfile.mkdtemp(prefix="mailpush-lualib-"))
        library.chmod(0o755)
        for source in LUALIB.iterdir():
            target = library / source.name
            target.write_bytes(source.read_bytes())
            target.chmod(0o644)
        settings["import_environment"] = f"TZ LUA_PATH={library}/?.lua;;"
    dovecot = DovecotInstance(
        users=[("alice", "secret")],
        lua_script=script,
        plugin_settings={"push_url": f"http://127.0.0.1:{endpoint.port}"},
        settings=settings,
    )
    try:
        async with dovecot:
            await asyncio.to_thread(_operate, dovecot.lmtp_port, dovecot.imap_port, append)
            received = await _quiet(endpoint, expected)
            log = dovecot.log_text()
    finally:
        await endpoint.stop()
        if library is not None:
            shutil.rmtree(library, ignore_errors=True)
    assert " Error: " not in log and " Panic: " not in log, log
    return received


async def under_mailpush(
    directory: Path,
    script: Path,
    expected: int,
    append: bool,
    lua_path: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> list[ReceivedRequest]:
    endpoint = HttpReceiver()
    await endpoint.start()
    if lua_path:
        monkeypatch.setenv("LUA_PATH", f"{LUALIB}/?.lua;;")
    imap = free_port()
    config = write_config(
        directory,
        imap_listener(imap)
        + textwrap.dedent(
            f"""\
            protocols = imap lmtp
            {PLUGINS}
            plugin {{
              push_notification_driver = lua:file={script}
              push_url = http://127.0.0.1:{endpoint.port}
            }}
            """
        ),
    )
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    try:
        await asyncio.to_thread(_operate, lmtp_port(server), imap, append)
        return await _quiet(endpoint, expected)
    finally:
        await server.stop()
        await endpoint.stop()


# --- comparing what arrived ----------------------------------------------------------------


def _content_type(request: ReceivedRequest) -> str | None:
    for name, value in request.headers.items():
        if name.lower() == "content-type":
            return value
    return None


def comparable(request: ReceivedRequest) -> dict[str, Any]:
    content_type = _content_type(request)
    body: Any = request.body
    if content_type is not None and "json" in content_type:
        body = json.loads(request.body)
    else:
        body = request.body.decode("utf-8", "replace")
    return {
        "method": request.method,
        "path": request.raw_path,
        "content_type": content_type,
        "body": body,
    }


CASES = [
    # script, requests expected, APPEND too, LUA_PATH needed
    pytest.param("socket_http_form.lua", 4, True, False, id="socket.http form POST"),
    pytest.param("socket_http_table.lua", 2, False, False, id="socket.http table + ltn12"),
    pytest.param("cjson_client.lua", 2, True, False, id="cjson + dovecot.http.client"),
    pytest.param("dkjson_client.lua", 1, False, False, id="dkjson (Debian lua-dkjson)"),
    pytest.param("luarocks_json.lua", 1, False, True, id="luarocks JSON.lua via LUA_PATH"),
]


@pytest.mark.parametrize(("script", "expected", "append", "lua_path"), CASES)
async def test_deployment_script_sends_the_requests_dovecot_sends(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    expected: int,
    append: bool,
    lua_path: bool,
) -> None:
    path = STYLES / script
    dovecot = await under_dovecot(path, expected, append, lua_path)
    mailpush = await under_mailpush(tmp_path, path, expected, append, lua_path, monkeypatch)
    theirs = [comparable(r) for r in dovecot]
    ours = [comparable(r) for r in mailpush]
    assert len(theirs) == expected, theirs
    assert ours == theirs

