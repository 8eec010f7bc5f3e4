"""A method called with `.` for `:` is a Lua error at the script's line saying how to call it."""

from __future__ import annotations

import re

from .conftest import DriverFactory
from .test_dovecot_api import run_handler


async def test_http_and_storage_methods_name_their_receiver_and_the_scripts_line(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        local client = dovecot.http.client({})
        RESULT.ok1, RESULT.e1 = pcall(function()
          local request = client.request({url = "http://127.0.0.1/"})
          return request
        end)
        RESULT.ok2, RESULT.e2 = pcall(function()
          local value = ctx.user.metadata_get("/private/vendor/x")
          return value
        end)
        RESULT.ok3, RESULT.e3 = pcall(function()
          local request = client:request({url = "http://127.0.0.1/"})
          local added = request.add_header("X-A", "1")
          return added
        end)
    """)
    assert (result[b"ok1"], result[b"ok2"], result[b"ok3"]) == (False, False, False)
    expected = {
        b"e1": b"bad argument #1 to 'request' (client expected; call it as client:request(...))",
        b"e2": b"bad argument #1 to 'metadata_get' (mail_user expected; call it as "
        b"mail_user:metadata_get(...))",
        b"e3": b"bad argument #1 to 'add_header' (request expected; call it as "
        b"request:add_header(...))",
    }
    lines = {b"e1": 8, b"e2": 12, b"e3": 17}
    for key, message in expected.items():
        error = result[key]
        # Raised at the script's own line, not inside mailpush's library.
        match = re.fullmatch(rb".*script0\.lua:(\d+): (.*)", error, re.DOTALL)
        assert match is not None, error
        assert (int(match.group(1)), match.group(2)) == (lines[key], message)
