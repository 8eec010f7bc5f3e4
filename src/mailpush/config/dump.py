"""`mailpush config dump`: the effective configuration in Dovecot's syntax, as `doveconf`.

The output is the parsed file (includes read, ``$variables`` expanded, repeated
keys resolved to the winning value) with every declared setting the file does
not write shown at its default. With ``changed_only`` (``-n``), only what the
file writes and differs from the declared default is shown, as `doveconf -n`.
Secrets (keys named like a password, secret or token; passwords in URLs) are
hidden unless asked for, as `doveconf` hides them without ``-P``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailpush.config.schema import SETTINGS, SettingSpec
from mailpush.config.syntax import ConfigSection

__all__ = ["dump_config"]

HIDDEN = "# hidden, use -P to show it"
_SECRET_KEY = re.compile(r"(password|secret|token|credentials?)$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\w+://[^/\s:@]*:)[^@/\s]*@")


def dump_config(tree: ConfigSection, *, changed_only: bool, show_secrets: bool = False) -> str:
    """The configuration text; it reads back into the same settings."""
    root = _Node()
    if not changed_only:
        for spec in SETTINGS:
            root.at(spec.section).set(spec.name, spec.default, False)
    _overlay(root, tree, (), changed_only)
    lines: list[str] = []
    root.render(lines, 0, show_secrets)
    return "".join(line + "\n" for line in lines)


# --- private -------------------------------------------------------------------------


@dataclass
class _Node:
    settings: dict[str, tuple[str, bool]] = field(default_factory=dict)
    sections: dict[str, _Node] = field(default_factory=dict)

    def at(self, path: tuple[str, ...]) -> _Node:
        node = self
        for label in path:
            node = node.sections.setdefault(label, _Node())
        return node

    def set(self, key: str, value: str, from_file: bool) -> None:
        self.settings.pop(key, None)  # the winning value goes where it was last written
        self.settings[key] = (value, from_file)

    def empty(self) -> bool:
        return not self.settings and all(child.empty() for child in self.sections.values())

    def render(self, lines: list[str], depth: int, show_secrets: bool) -> None:
        indent = "  " * depth
        for key, (value, from_file) in self.settings.items():
            text = f"<{value}" if from_file else value
            if not show_secrets:
                text = HIDDEN if _SECRET_KEY.search(key) and text else _URL_PASSWORD.sub(
                    r"\1***@", text
                )
            lines.append(f"{indent}{key} = {text}".rstrip())
        for label, child in self.sections.items():
            if child.empty():
                continue
            lines.append(f"{indent}{label} {{")
            child.render(lines, depth + 1, show_secrets)
            lines.append(f"{indent}}}")


def _overlay(
    node: _Node, section: ConfigSection, labels: tuple[str, ...], changed_only: bool
) -> None:
    target = node.at(labels)
    for entry in section.settings:
        spec = _declared(labels, entry.key)
        if changed_only and spec is not None and entry.value == spec.default:
            target.settings.pop(entry.key, None)
            continue
        target.set(entry.key, entry.value, entry.from_file)
    for sub in section.sections:
        _overlay(node, sub, (*labels, sub.label), changed_only)


def _declared(labels: tuple[str, ...], key: str) -> SettingSpec | None:
    for spec in SETTINGS:
        if spec.name == key and len(spec.section) == len(labels) and all(
            _matches(label, element) for label, element in zip(labels, spec.section, strict=True)
        ):
            return spec
    return None


def _matches(label: str, element: str) -> bool:
    """``passdb`` (any name) matches ``passdb`` and ``passdb db1``; ``service lmtp`` itself."""
    return label == element or (" " not in element and label.split(" ", 1)[0] == element)
