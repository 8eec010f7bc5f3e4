"""The settings reference, generated from the declarations in `schema.py`.

Regenerate the checked-in copy with::

    python -m mailpush.config.docs > docs/settings.md

A test fails when the two differ, so the reference cannot drift from the code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

from mailpush.config.schema import FREEFORM_BLOCKS, SETTINGS, SettingSpec, SettingType

__all__ = [
    "REGENERATE_COMMAND",
    "VALUE_TYPES",
    "markdown_cell",
    "render_settings_markdown",
    "value_types_table",
]

REGENERATE_COMMAND = "python -m mailpush.config.docs > docs/settings.md"

#: How a value of each type is written (shared with the driver pages, `drivers.docs`).
VALUE_TYPES: Mapping[SettingType, str] = {
    SettingType.BOOL: "`yes` or `no` (also `true`/`false`, `1`/`0`)",
    SettingType.SIZE: "a whole number and a unit `b k kb m mb g gb t tb` (any case, powers of"
    " 1024); a bare number is bytes: `500kb`, `10M`",
    SettingType.DURATION: "a number and a unit `ms s m h d w` (or `secs`, `mins`, `hours`,"
    " `days`, `weeks`...); a bare number is seconds",
    SettingType.LIST: "words separated by spaces or commas: `imap lmtp`",
    SettingType.PATH: "a file or directory; relative paths are relative to the configuration"
    " file's directory",
    SettingType.PORT: "`0` to `65535`; `0` disables the listener",
    SettingType.CHOICE: "one of the listed words",
    SettingType.COUNT: "a whole number, at least 1",
    SettingType.LIMIT: "a whole number; `0` means no limit",
    SettingType.NUMBER: "a whole number, at least 0",
    SettingType.STRING: "any text",
}
_SETTINGS_VALUE_TYPES = (
    SettingType.BOOL,
    SettingType.SIZE,
    SettingType.DURATION,
    SettingType.LIST,
    SettingType.PATH,
    SettingType.PORT,
    SettingType.CHOICE,
    SettingType.COUNT,
    SettingType.STRING,
)


def render_settings_markdown() -> str:
    """The full text of docs/settings.md."""
    lines = [
        "# mailpush settings",
        "",
        f"<!-- Generated from src/mailpush/config/schema.py by `{REGENERATE_COMMAND}`;",
        "     edit the declarations there, not this file. -->",
        "",
        "mailpush reads a Dovecot-style configuration file; without one it runs on the",
        "defaults below. Settings it does not know are",
        "listed, with their file and line, in a single warning at start; they do not stop",
        "the server. A value that cannot be used stops it with an error naming the",
        "setting and its place.",
        "",
        "## Syntax",
        "",
        "- `key = value`: the value is the rest of the line; quote it (`\"...\"` or `'...'`)",
        "  to keep a ` #` in it. `#` after whitespace starts a comment.",
        "- `type {`, `type name {` ... `}` are blocks. On one line,",
        "  `service lmtp { inet_listener lmtp { port = 24 } }` works too; there each value",
        "  is one word (or quoted).",
        "- `key = <path` takes the value from a file (`ssl_cert = </etc/ssl/cert.pem`).",
        "- `$name` is the value `name` already has: `mail_plugins = $mail_plugins quota`.",
        "- `!include FILE` and `!include_try FILE` (relative to the including file, globs",
        "  allowed; `!include_try` skips missing files).",
        "",
        "## Value types",
        "",
        *value_types_table(_SETTINGS_VALUE_TYPES),
        "",
    ]
    for section in _sections_in_order():
        lines.append(f"## {_section_title(section)}")
        lines.append("")
        lines.append("| setting | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for spec in SETTINGS:
            if spec.section == section:
                lines.append(_row(spec))
        lines.append("")
    lines.append("## Blocks kept as written")
    lines.append("")
    for block in FREEFORM_BLOCKS:
        header = f"{block.type} NAME {{ }}" if block.named else f"{block.type} {{ }}"
        lines.append(f"- `{header}`: {block.doc}")
    lines.append("")
    return "\n".join(lines)


def value_types_table(types: Iterable[SettingType]) -> list[str]:
    """The Markdown table saying how values of `types` are written."""
    lines = ["| type | written as |", "|---|---|"]
    lines.extend(f"| {kind.value} | {VALUE_TYPES[kind]} |" for kind in types)
    return lines


def markdown_cell(text: str) -> str:
    """`text` made safe for one cell of a Markdown table."""
    return text.replace("|", chr(92) + "|")


def _sections_in_order() -> list[tuple[str, ...]]:
    return list(dict.fromkeys(spec.section for spec in SETTINGS))


def _section_title(section: tuple[str, ...]) -> str:
    if not section:
        return "Top level"
    text = "..."
    for element in reversed(section):
        text = f"{element} {{ {text} }}"
    return f"`{text}`"


def _row(spec: SettingSpec) -> str:
    kind = spec.type.value
    if spec.type is SettingType.CHOICE:
        kind = " \\| ".join(f"`{choice}`" for choice in spec.choices)
    default = f"`{spec.default}`" if spec.default else "(empty)"
    return f"| `{spec.name}` | {kind} | {default} | {markdown_cell(spec.doc)} |"


if __name__ == "__main__":
    sys.stdout.write(render_settings_markdown())
