"""Dovecot's nested sections: plugin blocks, protocol filters, and what nobody declared.

A Dovecot configuration is more than ``key = value``: ``plugin { }`` holds
free-form driver keys, ``protocol NAME { }`` overrides values for one service,
2.4's ``mail_plugins { name = yes|no }`` edits a list, and ``push_notification
NAME { }`` names a driver instance. This module answers those questions about a
parsed tree; `reader.py` turns the answers into `Settings`. The unknown-setting
walk lives here too, because what counts as known depends on the same rules
(a setting inside ``protocol lmtp { }`` is read only if it is per service).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from mailpush.config import schema
from mailpush.config.settings import PROTOCOL_SERVICES, PushNotificationBlock
from mailpush.config.syntax import ConfigSection
from mailpush.config.values import parse_bool, parse_list
from mailpush.errors import InvalidValueError, SettingError

__all__ = [
    "mail_plugins",
    "plugin_places",
    "plugin_values",
    "protocol_push_driver_warnings",
    "push_notification_blocks",
    "sections_at",
    "unknown_settings",
]


def sections_at(tree: ConfigSection, path: tuple[str, ...]) -> list[ConfigSection]:
    """All sections at ``path``; Dovecot merges repeated blocks, later values winning."""
    current = [tree]
    for element in path:
        current = [sub for section in current for sub in section.sections if _matches(sub, element)]
    return current


def mail_plugins(tree: ConfigSection, protocol: str | None) -> tuple[str, ...]:
    """The plugins the global scope (``None``) or service ``protocol`` loads.

    The declared default counts only while `mail_plugins` is written nowhere;
    otherwise the global value is what the file says (empty if only protocol
    sections set it), as in Dovecot. A protocol section's value was expanded
    from the global one by the parser and replaces it; its 2.4 block edits it.
    """
    sections = tree.find("protocol", protocol) if protocol is not None else ()
    plugins = dict.fromkeys(_global_mail_plugins(tree))
    _apply_plugin_blocks(plugins, tree.find("mail_plugins"))
    for section in sections:
        entry = section.get(schema.MAIL_PLUGINS.name)
        if entry is not None:
            plugins = dict.fromkeys(parse_list(entry.value))
        _apply_plugin_blocks(plugins, section.find("mail_plugins"))
    return tuple(plugins)


def plugin_values(tree: ConfigSection, protocol: str | None) -> Mapping[str, str]:
    """Global ``plugin { }`` values, with ``protocol``'s own ``plugin { }`` merged over them."""
    values: dict[str, str] = {}
    blocks = list(tree.find("plugin"))
    if protocol is not None:
        for section in tree.find("protocol", protocol):
            blocks.extend(section.find("plugin"))
    for block in blocks:
        for entry in block.settings:
            values[entry.key] = entry.value
    return MappingProxyType(values)


def plugin_places(tree: ConfigSection) -> Mapping[str, str]:
    """``file:line`` of each global ``plugin { }`` key's winning entry.

    Kept beside `plugin_values` so that errors about a 2.3-style
    ``push_notification_driver`` or ``sieve_before`` name the line to fix.
    """
    places: dict[str, str] = {}
    for block in tree.find("plugin"):
        for entry in block.settings:
            places[entry.key] = entry.where
    return MappingProxyType(places)


def push_notification_blocks(tree: ConfigSection) -> tuple[PushNotificationBlock, ...]:
    """Dovecot 2.4 ``push_notification NAME { }`` blocks, their nested blocks flattened."""
    blocks: list[PushNotificationBlock] = []
    for block in tree.find("push_notification"):
        subsections: dict[str, Mapping[str, str]] = {}
        _collect_subsections(block, "", subsections)
        blocks.append(
            PushNotificationBlock(
                name=block.name or "",
                settings=MappingProxyType({e.key: e.value for e in block.settings}),
                subsections=MappingProxyType(subsections),
                file=block.file,
                line=block.line,
            )
        )
    return tuple(blocks)


def protocol_push_driver_warnings(tree: ConfigSection) -> list[str]:
    """Push drivers named in a protocol's ``plugin { }`` are not per service in mailpush."""
    warnings = []
    for section in tree.find("protocol"):
        for block in section.find("plugin"):
            for entry in block.settings:
                if entry.key.startswith(("push_notification_driver", "push_notification_backend")):
                    warnings.append(
                        f"{entry.where}: {entry.key} inside protocol {section.name} {{ plugin "
                        "{ } } is not read: mailpush takes push drivers from the global plugin "
                        "{ } and chooses per service with mail_plugins; move it there"
                    )
    return warnings


def unknown_settings(tree: ConfigSection) -> list[str]:
    """Every setting and block no declaration covers, as ``name (file:line)``."""
    found: list[str] = []
    freeform = {block.type for block in schema.FREEFORM_BLOCKS}
    _walk_unknown(tree, (), freeform, found)
    return found


# --- private -------------------------------------------------------------------------


def _global_mail_plugins(tree: ConfigSection) -> tuple[str, ...]:
    name = schema.MAIL_PLUGINS.name
    written = any(
        section.get(name) is not None or section.find(name)
        for section in (tree, *tree.find("protocol"))
    )
    if not written:
        return parse_list(schema.MAIL_PLUGINS.default)
    entry = tree.get(name)
    return () if entry is None else parse_list(entry.value)


def _apply_plugin_blocks(plugins: dict[str, None], blocks: Sequence[ConfigSection]) -> None:
    """Dovecot 2.4 ``mail_plugins { name = yes|no }``: add or remove, in written order."""
    for block in blocks:
        for entry in block.settings:
            try:
                enabled = parse_bool(entry.value)
            except InvalidValueError as exc:
                raise SettingError(
                    f"mail_plugins {{ {entry.key} }}", str(exc), entry.where
                ) from exc
            if enabled:
                plugins[entry.key] = None
            else:
                plugins.pop(entry.key, None)


def _matches(section: ConfigSection, element: str) -> bool:
    type_, _, name = element.partition(" ")
    return section.type == type_ and (not name or section.name == name)


def _collect_subsections(
    section: ConfigSection, prefix: str, into: dict[str, Mapping[str, str]]
) -> None:
    for sub in section.sections:
        label = f"{prefix}{sub.label}"
        into[label] = MappingProxyType({entry.key: entry.value for entry in sub.settings})
        _collect_subsections(sub, f"{label}/", into)


def _walk_unknown(
    section: ConfigSection, path: tuple[str, ...], freeform: set[str], found: list[str]
) -> None:
    known_keys = {spec.name for spec in schema.SETTINGS if spec.section == path}
    for entry in section.settings:
        if entry.key not in known_keys:
            found.append(f"{entry.key} ({entry.where})")
    child_elements = {
        spec.section[len(path)]
        for spec in schema.SETTINGS
        if len(spec.section) > len(path) and spec.section[: len(path)] == path
    }
    for sub in section.sections:
        if not path and sub.type == "protocol":
            if sub.name in PROTOCOL_SERVICES:
                _walk_unknown_protocol(sub, found)
            else:
                found.append(f"{sub.label} {{ }} ({sub.where})")
            continue
        if not path and sub.type in freeform:
            continue
        element = next((e for e in sorted(child_elements) if _matches(sub, e)), None)
        if element is None:
            found.append(f"{sub.label} {{ }} ({sub.where})")
        else:
            _walk_unknown(sub, (*path, element), freeform, found)


def _walk_unknown_protocol(section: ConfigSection, found: list[str]) -> None:
    """Inside ``protocol lmtp|imap|lda { }`` only the per-service settings are read."""
    known_keys = {spec.name for spec in schema.PROTOCOL_SETTINGS}
    for entry in section.settings:
        if entry.key not in known_keys:
            found.append(f"{entry.key} ({entry.where})")
    for sub in section.sections:
        if sub.type not in ("plugin", "mail_plugins"):
            found.append(f"{sub.label} {{ }} ({sub.where})")
