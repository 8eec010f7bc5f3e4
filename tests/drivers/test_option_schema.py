"""Driver options are declared once: parsing, defaults and docs/drivers/*.md come from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpush.config.schema import SettingType
from mailpush.drivers import DriverConfig, DriverOptionSchema, default_registry
from mailpush.drivers.docs import REGENERATE_COMMAND, render_driver_pages
from mailpush.drivers.driver_options import DriverOptions
from mailpush.drivers.option_schema import DriverOption, declare_option
from mailpush.drivers.shared_options import RETRY_OPTIONS, TIMEOUT
from mailpush.errors import SettingError

REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER_DOCS = REPO_ROOT / "docs" / "drivers"
SCHEMAS = [driver.option_schema for driver in default_registry().classes()]


def test_docs_driver_pages_are_generated_from_the_declarations() -> None:
    pages = render_driver_pages()
    assert sorted(pages) == ["chronos.md", "dlog.md", "lua.md", "ox.md", "webhook.md"]
    checked_in = sorted(path.name for path in DRIVER_DOCS.glob("*.md"))
    assert checked_in == sorted(pages), (
        f"docs/drivers/ holds other pages than the drivers'; regenerate with: "
        f"{REGENERATE_COMMAND}"
    )
    for name, text in pages.items():
        assert (DRIVER_DOCS / name).read_text(encoding="utf-8") == text, (
            f"docs/drivers/{name} is out of date; regenerate it with: {REGENERATE_COMMAND}"
        )


def test_each_driver_page_lists_every_option_it_accepts() -> None:
    pages = render_driver_pages()
    for schema in SCHEMAS:
        for option in schema:
            assert f"| `{option.name}`" in pages[f"{schema.driver}.md"]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.driver)
def test_a_driver_accepts_each_option_name_once(schema: DriverOptionSchema) -> None:
    names = schema.known_names()
    assert len(names) == len(set(names))


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.driver)
def test_every_declared_default_is_a_value_its_parser_accepts(
    schema: DriverOptionSchema,
) -> None:
    options = DriverOptions(DriverConfig("x", "x", {}))
    for option in schema:
        read_default(options, option)


def test_every_driver_accepts_the_shared_retry_options_with_one_description() -> None:
    for schema in SCHEMAS:
        for shared in RETRY_OPTIONS:
            declared = schema.get(shared.name)
            assert declared is not None, f"{schema.driver} lacks {shared.name}"
            assert declared.spec.doc == shared.spec.doc
            assert declared.type is shared.type


def test_the_first_name_written_wins_and_bare_numbers_take_the_declared_unit() -> None:
    timeout = TIMEOUT.with_default("2s").with_bare_unit("ms")
    options = DriverOptions(
        DriverConfig("c", "chronos", {"http_client_request_timeout": "5s", "timeout": "500"})
    )
    assert options.duration(timeout) == 0.5
    only_alias = DriverOptions(DriverConfig("c", "chronos", {"http_client_request_timeout": "5"}))
    assert only_alias.duration(timeout) == 0.005
    assert DriverOptions(DriverConfig("c", "chronos")).duration(timeout) == 2.0


def test_a_bad_value_names_the_instance_the_name_written_and_the_place() -> None:
    limit = declare_option("tries", SettingType.COUNT, "3", "doc", aliases=("attempts",),
                           minimum=1, maximum=5)
    options = DriverOptions(DriverConfig("hook#2", "webhook", {"attempts": "9"}, where="f:4"))
    with pytest.raises(SettingError) as raised:
        options.count(limit)
    assert str(raised.value).startswith("f:4: hook#2 attempts:")
    assert "1..5" in str(raised.value)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (SettingType.DURATION, "0s", "must be more than 0, got '0s'"),
        (SettingType.DURATION, "soon", "soon"),
        (SettingType.SIZE, "0", "must be more than 0, got '0'"),
        (SettingType.SIZE, "big", "big"),
    ],
)
def test_a_duration_or_size_must_parse_and_be_more_than_0(
    kind: SettingType, value: str, reason: str
) -> None:
    option = declare_option("wait", kind, "1s" if kind is SettingType.DURATION else "1k", "doc")
    options = DriverOptions(DriverConfig("hook", "webhook", {"wait": value}, where="f:2"))
    read = options.duration if kind is SettingType.DURATION else options.size
    with pytest.raises(SettingError) as raised:
        read(option)
    assert str(raised.value).startswith("f:2: hook wait: ")
    assert reason in str(raised.value)


def test_a_positive_duration_or_size_is_read_in_its_unit() -> None:
    options = DriverOptions(DriverConfig("hook", "webhook", {"wait": "1500ms", "most": "2k"}))
    assert options.duration(declare_option("wait", SettingType.DURATION, "1s", "doc")) == 1.5
    assert options.size(declare_option("most", SettingType.SIZE, "1k", "doc")) == 2048


def read_default(options: DriverOptions, option: DriverOption) -> object:
    kind = option.type
    if kind is SettingType.BOOL:
        return options.flag(option)
    if kind is SettingType.DURATION:
        return options.optional_duration(option)
    if kind is SettingType.SIZE:
        return options.size(option)
    if kind in (SettingType.COUNT, SettingType.LIMIT, SettingType.NUMBER):
        return options.optional_count(option)
    if kind is SettingType.CHOICE:
        assert option.default in option.spec.choices
    return options.text(option)
