"""`require "ltn12"` and `require "mime"`: LuaSocket's results, from mailpush's built-ins.

Where Debian's lua-socket is installed, each snippet also runs under the real
LuaSocket (ltn12.lua, mime.lua and mime/core.so) and the results must match.
"""

from __future__ import annotations

from collections.abc import Callable

from .conftest import DriverFactory
from .system_lua import system_lua_with

PRELUDE = """
local ltn12, mime = require "ltn12", require "mime"
local function all(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  return table.concat(t, "|")
end
local function through(src, ...)
  local out = {}
  local ok, err = ltn12.pump.all(ltn12.source.chain(src, ...), (ltn12.sink.table(out)))
  return table.concat(out) .. "|" .. tostring(ok) .. tostring(err)
end
local function text(n)
  local t = {}
  for i = 1, n do t[i] = string.char(32 + (i * 7) % 95) .. ((i % 40 == 0) and "\\r\\n" or "") end
  return table.concat(t)
end
"""

SNIPPETS = [
    'all(mime.b64("hello"))',
    'all(mime.b64("hel", "lo!"))',
    'all(mime.b64("h", "el"))',
    'all(mime.b64(""))',
    "all(mime.b64(nil))",
    'all(mime.unb64("aGVsbG8="))',
    'all(mime.unb64("aGVs", "bG8=x"))',
    'all(mime.unb64("a G\\r\\nVs!bG8="))',
    'all(mime.qp("a=b \\r\\nc\\t\\r\\nd\\128 end "))',
    'all(mime.qp("abc ", "def \\r"))',
    'all(mime.qp("x\\r\\ny", nil, "=0D=0A"))',
    'all(mime.unqp("a=3Db=\\r\\nc=ZZ=4"))',
    'all(mime.unqp("ab=4", "1\\ncd\\r"))',
    'all(mime.wrp(10, "0123456789abcdefghij\\nxyz\\r\\n"))',
    "all(mime.wrp(5, nil)) .. all(mime.wrp(76, nil, 76))",
    "all(mime.qpwrp(5, nil)) .. all(mime.qpwrp(76, nil, 76))",
    'all(mime.qpwrp(10, "abcdefg=3Dhij=20klmnop\\r\\nq", 10))',
    'all(mime.eol(0, "a\\rb\\nc\\r\\nd\\n\\re\\r\\rf\\n"))',
    'all(mime.eol(13, "\\nx", "<br>"))',
    'all(mime.dot(2, ".a\\r\\n.b\\r\\n..c"))',
    'through(ltn12.source.string(text(300)), mime.encode("base64"), mime.wrap("base64"))',
    'through(ltn12.source.string(text(300)), mime.normalize(), mime.encode("quoted-printable"),'
    ' mime.wrap("quoted-printable"))',
    'through(ltn12.source.string("aGVsbG8gd29y\\r\\nbGQ="), mime.decode("base64"))',
    'through(ltn12.source.string("a=3D1=\\r\\nb"), mime.decode("quoted-printable"))',
    'through(ltn12.source.string("x\\ny\\rz"), mime.normalize("\\n"))',
    'through(ltn12.source.string(".x\\r\\n."), mime.stuff())',
    'through(ltn12.source.cat(ltn12.source.string("ab"), ltn12.source.empty(),'
    ' ltn12.source.string("cd")), ltn12.filter.chain(mime.encode("base64"), mime.wrap(8)))',
    'through(ltn12.source.error("boom"), mime.encode("base64"))',
    'all(ltn12.pump.all(ltn12.source.string("x"), ltn12.sink.error("full")))',
    """(function()
      local out = {}
      local sink = ltn12.sink.chain(mime.encode("base64"), (ltn12.sink.table(out)))
      ltn12.pump.all(ltn12.source.string(text(100)), sink)
      return table.concat(out)
    end)()""",
    """(function()
      local src = ltn12.source.rewind(ltn12.source.string("abc"))
      local first = src()
      src("pushed")
      return all(first, src(), src(), src())
    end)()""",
    """(function()
      local out = {}
      local src, snk = ltn12.source.string("abcd"), ltn12.sink.table(out)
      local steps = 0
      while ltn12.pump.step(src, snk) do steps = steps + 1 end
      return steps .. table.concat(out)
    end)()""",
    """(function()
      ltn12.BLOCKSIZE = 3
      local out = {}
      ltn12.pump.all(ltn12.source.string("abcdefgh"), (ltn12.sink.table(out)))
      return table.concat(out, ",")
    end)()""",
]


def _chunk(expression: str) -> bytes:
    return f"{PRELUDE} return ({expression})".encode()


async def _ours(make_driver: DriverFactory) -> Callable[[str], bytes]:
    driver = await make_driver("function dovecot_lua_notify_begin_txn(user) return {} end")
    state = await driver.state_for("alice")

    def run(expression: str) -> bytes:
        result = state.runtime.lua.execute(_chunk(expression))
        assert isinstance(result, bytes), result
        return result

    return run


async def test_ltn12_and_mime_give_luasockets_results(make_driver: DriverFactory) -> None:
    system = system_lua_with("mime/core.so")
    ours = await _ours(make_driver)
    expected = system.run_all([_chunk(expression) for expression in SNIPPETS])
    for expression, theirs in zip(SNIPPETS, expected, strict=True):
        assert ours(expression) == theirs, expression


async def test_mime_and_ltn12_follow_luasockets_documentation(
    make_driver: DriverFactory,
) -> None:
    ours = await _ours(make_driver)
    assert ours('all(mime.b64("hel", "lo"))') == b"aGVs|lo"
    assert ours('all(mime.b64("lo"))') == b"bG8=|nil"
    assert ours('all(mime.unb64("aGVsbG8="))') == b"hello|nil"
    assert ours('all(mime.qp("caf\\195\\169 \\r\\n"))') == b"caf=C3=A9=20\r\n|nil"
    assert ours('all(mime.unqp("caf=C3=A9"))') == "café|nil".encode()
    assert ours(
        'through(ltn12.source.string("hello world"), mime.encode("base64"))'
    ) == b"aGVsbG8gd29ybGQ=|1nil"
