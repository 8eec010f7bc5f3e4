"""Driver instances from both of Dovecot's configuration syntaxes, 2.3's and 2.4's.

Both are shown to users in docs/push.md#configuring-drivers.

Dovecot 2.3: `plugin { push_notification_driver = NAME:k=v k2 ... }` then
`push_notification_driver2`, `…3`, stopping at the first missing or empty key
(no gaps), with the legacy `push_notification_backend` keys as a fallback.
Dovecot 2.4 / Pro 3.x: `push_notification NAME { driver = NAME  key = value }`
blocks, the driver defaulting to the block's name. Both may be present.

In 2.4 a top-level setting carries into every block, so a top-level
`push_notification_chronos_url` is the `url` of each chronos block that does
not set one itself. Top-level `push_notification_<driver>_*` settings are
therefore merged into the options of that driver's blocks, under their full
name; drivers read the short name (`url`) first, so the block's value wins.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import Settings
from .driver_config import DriverConfig


def driver_configs(settings: Settings) -> list[DriverConfig]:
    configs = _plugin_drivers(settings.plugin, settings.plugin_places)
    for block in settings.push_notification_blocks:
        options = dict(block.settings)
        driver = options.pop("driver", "") or options.pop("push_notification_driver", "")
        driver = (driver or block.name).lower()
        prefix = f"push_notification_{driver}_"
        defaults = {
            key: value
            for key, value in settings.push_notification_defaults.items()
            if key.startswith(prefix)
        }
        configs.append(
            DriverConfig(
                instance=block.name,
                driver=driver,
                options={**defaults, **options},
                subsections=dict(block.subsections),
                where=f"{block.file}:{block.line}",
                syntax="2.4",
            )
        )
    return _unique_instances(configs)


def parse_driver_value(value: str) -> tuple[str, dict[str, str]]:
    """`ox:url=http://x user_from_metadata` → (`ox`, {url: http://x, user_from_metadata: ""})."""
    name, _, rest = value.partition(":")
    options: dict[str, str] = {}
    for token in rest.split():
        key, _, option = token.partition("=")
        options[key] = option
    return name.strip(), options


def _plugin_drivers(plugin: Mapping[str, str], places: Mapping[str, str]) -> list[DriverConfig]:
    for prefix in ("push_notification_driver", "push_notification_backend"):
        found: list[DriverConfig] = []
        index = 1
        while True:
            key = prefix if index == 1 else f"{prefix}{index}"
            value = plugin.get(key, "").strip()
            if not value:
                break
            name, options = parse_driver_value(value)
            where = places.get(key, key)  # file:line when read from a file
            found.append(DriverConfig(name.lower(), name.lower(), options, where=where))
            index += 1
        if found:
            return found
    return []


def _unique_instances(configs: list[DriverConfig]) -> list[DriverConfig]:
    """Two `lua` drivers become `lua` and `lua#2`: instance names key the outbox."""
    seen: dict[str, int] = {}
    out = []
    for config in configs:
        count = seen.get(config.instance, 0) + 1
        seen[config.instance] = count
        if count > 1:
            config = DriverConfig(f"{config.instance}#{count}", config.driver, config.options,
                                  config.subsections, config.where, config.syntax)
        out.append(config)
    return out
