"""Every module logs under its own name, and its messages do not repeat that name.

The log format prints the logger (`time LEVEL mailpush.imap.connection: message`),
so `logging.getLogger(__name__)` alone says where a line came from, and a
package prefix (`mailpush.drivers.lua`) selects a whole part for a level or a
test's `caplog`. A hand-written name drifts from the module (eight modules once
shared `mailpush.push.lua`), and a message prefix such as `imap: ` then only
repeats the logger. The source is read with `ast`, so a new module is checked
without being listed here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mailpush"

#: The only loggers fetched by another name, to configure rather than to log: the log
#: setup configures the root logger (where every record ends), quiets aiosmtpd's
#: `mail.log` and filters one psycopg notice; `mailpush config check` silences the
#: whole package, printing instead.
NOT_MODULE_LOGGERS = {
    ("mailpush.logging_config", "getLogger()"),
    ("mailpush.logging_config", "getLogger('mail.log')"),
    ("mailpush.logging_config", "getLogger('psycopg')"),
    ("mailpush.cli.config", "getLogger('mailpush')"),
}

_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
#: A message prefix that only repeats a part's name, by the part (`mailpush.<part>`).
#: `mailpush.server` names the part it starts (`lmtp: listening on …`) on purpose:
#: its logger does not. The Lua driver's `lua: USER: ` is Dovecot's prefix, kept.
_REDUNDANT_PREFIXES = {
    "auth": ("auth: ",),
    "dispatch": ("push: ",),
    "drivers": ("push: ",),
    "imap": ("imap: ",),
    "lmtp": ("lmtp: ",),
    "sieve": ("sieve: ",),
    "store": ("store: ",),
}


@dataclass(frozen=True)
class Found:
    module: str
    line: int
    text: str


def test_every_module_gets_its_logger_by_its_own_name() -> None:
    calls = get_logger_calls(SOURCE_ROOT, PACKAGE)
    named_otherwise = {(c.module, c.text) for c in calls if c.text != "getLogger(__name__)"}
    assert named_otherwise <= NOT_MODULE_LOGGERS, sorted(named_otherwise - NOT_MODULE_LOGGERS)


def test_the_modules_that_log_are_found() -> None:
    modules = {c.module for c in get_logger_calls(SOURCE_ROOT, PACKAGE)}
    assert {"mailpush.imap.connection", "mailpush.dispatch.dispatcher",
            "mailpush.drivers.lua.engine.script_state", "mailpush.cli.deliver"} <= modules


def test_no_message_repeats_its_part_as_a_prefix() -> None:
    found = redundant_prefixes(SOURCE_ROOT, PACKAGE)
    assert found == [], [f"{f.module}:{f.line}: {f.text!r}" for f in found]


def test_a_repeated_prefix_and_a_hand_named_logger_are_reported(tmp_path: Path) -> None:
    imap = tmp_path / PACKAGE / "imap"
    imap.mkdir(parents=True)
    (imap / "server.py").write_text(
        "import logging\n"
        "log = logging.getLogger('mailpush.imap')\n"
        "log.warning('imap: %d connections still busy', 3)\n"
        "log.log(logging.INFO, 'imap: ' 'closed')\n"
        "log.info('closing imap: now')\n"
    )
    calls = get_logger_calls(tmp_path, PACKAGE)
    assert [(c.module, c.text) for c in calls] == [
        ("mailpush.imap.server", "getLogger('mailpush.imap')")
    ]
    assert [(f.line, f.text) for f in redundant_prefixes(tmp_path, PACKAGE)] == [
        (3, "imap: %d connections still busy"),
        (4, "imap: closed"),
    ]


def get_logger_calls(root: Path, package: str) -> list[Found]:
    """Every `logging.getLogger(...)` or `getLogger(...)` call, as written."""
    found = []
    for module, tree in _modules(root, package):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _called_name(node.func) == "getLogger":
                text = "getLogger(" + ", ".join(ast.unparse(a) for a in node.args) + ")"
                found.append(Found(module, node.lineno, text))
    return sorted(found, key=lambda f: (f.module, f.line))


def redundant_prefixes(root: Path, package: str) -> list[Found]:
    """Log messages of `package.<part>` that start with that part's own name."""
    found = []
    for module, tree in _modules(root, package):
        part = module.split(".")[1] if module.count(".") else ""
        prefixes = _REDUNDANT_PREFIXES.get(part, ())
        for node in ast.walk(tree):
            message = _log_message(node)
            if message is not None and message.startswith(prefixes):
                found.append(Found(module, node.lineno, message))
    return sorted(found, key=lambda f: (f.module, f.line))


def _modules(root: Path, package: str) -> list[tuple[str, ast.Module]]:
    modules = []
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append((".".join(parts), ast.parse(path.read_text(encoding="utf-8"))))
    return modules


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _log_message(node: ast.AST) -> str | None:
    """The literal message of `<logger>.info("...", ...)` or `<logger>.log(level, "...")`."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    method = node.func.attr
    index = 1 if method == "log" else 0 if method in _LOG_METHODS else None
    if index is None or len(node.args) <= index:
        return None
    message = node.args[index]
    if isinstance(message, ast.Constant) and isinstance(message.value, str):
        return message.value
    return None
