"""One reference page per push driver, generated from the driver's option declarations.

Regenerate the checked-in pages with::

    python -m mailpush.drivers.docs docs/drivers

A test fails when a page differs from what this module renders, so the pages
cannot drift from what the drivers parse (`option_schema`, `driver_options`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..config.docs import markdown_cell, value_types_table
from ..config.schema import SettingType
from .option_schema import DriverOption, DriverOptionSchema
from .registry import default_registry

__all__ = ["REGENERATE_COMMAND", "render_driver_pages", "write_driver_pages"]

REGENERATE_COMMAND = "python -m mailpush.drivers.docs docs/drivers"

_NUMBERS = (SettingType.COUNT, SettingType.LIMIT, SettingType.NUMBER)


def render_driver_pages() -> dict[str, str]:
    """File name (`chronos.md`) → text, for every driver mailpush ships."""
    return {
        f"{driver.option_schema.driver}.md": render_driver_page(driver.option_schema)
        for driver in default_registry().classes()
    }


def write_driver_pages(directory: Path) -> list[Path]:
    """Write every page into `directory`; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_driver_pages().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def render_driver_page(schema: DriverOptionSchema) -> str:
    """The full text of docs/drivers/<driver>.md."""
    name = schema.driver
    lines = [
        f"# The `{name}` push driver",
        "",
        f"<!-- Generated from the {name} driver's option declarations by "
        f"`{REGENERATE_COMMAND}`;",
        "     edit the declarations in src/mailpush/drivers/, not this file. -->",
        "",
        schema.summary,
        "",
        "## Configuring it",
        "",
        f"- Dovecot 2.3: `plugin {{ push_notification_driver = {name}:OPTION=VALUE OPTION2 }}`"
        " (then `push_notification_driver2`, ...); values cannot hold spaces, and an option"
        " written without `=VALUE` is `yes`.",
        f"- Dovecot 2.4: `push_notification NAME {{ driver = {name}  OPTION = VALUE }}`"
        " (`driver` defaults to the block's name).",
        "",
        "A value that cannot be used stops mailpush at start with an error naming the driver"
        " and the option.",
        "",
        "## Options",
        "",
        "| option | type | default | meaning |",
        "|---|---|---|---|",
        *(_row(option) for option in schema),
        "",
        "## Value types",
        "",
        *value_types_table(dict.fromkeys(option.type for option in schema)),
        "",
    ]
    return "\n".join(lines)


def _row(option: DriverOption) -> str:
    names = f"`{option.name}`"
    if option.aliases:
        names += " (also " + ", ".join(f"`{alias}`" for alias in option.aliases) + ")"
    return (
        f"| {names} | {_type(option)} | {_default(option)} | {markdown_cell(option.spec.doc)} |"
    )


def _type(option: DriverOption) -> str:
    kind = option.type
    if kind is SettingType.CHOICE:
        return " \\| ".join(f"`{choice}`" for choice in option.spec.choices)
    if kind in _NUMBERS:
        return f"{kind.value}, at most {option.maximum:,}"
    if kind is SettingType.DURATION:
        if option.bare_unit is None:
            return f"{kind.value} (a unit is required)"
        if option.bare_unit != "s":
            return f"{kind.value} (a bare number is {option.bare_unit})"
    return str(kind.value)


def _default(option: DriverOption) -> str:
    if option.required:
        return "required"
    if option.default:
        return f"`{option.default}`"
    return markdown_cell(option.default_doc) if option.default_doc else "(empty)"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {REGENERATE_COMMAND}")
    for written in write_driver_pages(Path(sys.argv[1])):
        print(written)
