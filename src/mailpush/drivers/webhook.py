"""webhook: one JSON POST per push transaction (mailpush's own driver).

Options (2.3 `webhook:url=… timeout=10s`, or a `push_notification NAME
{ driver = webhook  url = … }` block): `url` (required), `timeout`
(default 10s). The request carries the transaction id in `webhook-id`, stable
across retries, so receivers can drop duplicates. 2xx is success; 408, 429
and 5xx and network errors are retried; other 4xx are permanent.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from ..config import parse_duration
from ..errors import PermanentDriverError, RetryableDriverError, SettingError
from ..events import PushEvent, PushTransaction, transaction_to_dict
from ..logging_config import mask_secrets
from .base import DriverConfig, DriverServices, PushDriver


class WebhookDriver(PushDriver):
    name = "webhook"

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        super().__init__(config, services)
        url = config.options.get("url", "")
        if not url.startswith(("http://", "https://")):
            raise SettingError(
                f"{config.instance} url", "an http:// or https:// URL is required", config.where
            )
        self.url = url
        try:
            self.timeout = parse_duration(config.options.get("timeout", "10s"))
        except ValueError as exc:
            raise SettingError(f"{config.instance} timeout", str(exc), config.where) from None

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        return {"txn": txn, "events": []}

    async def process_event(self, state: object, event: PushEvent) -> None:
        assert isinstance(state, dict)
        state["events"].append(event)

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, dict)
        txn: PushTransaction = state["txn"]
        if not success or not state["events"]:
            return
        body = json.dumps(_payload(txn, state["events"]), ensure_ascii=False).encode()
        headers = {"content-type": "application/json", "webhook-id": txn.id}
        try:
            async with self.services.http().post(
                self.url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableDriverError(
                f"POST {mask_secrets(self.url)} failed: {exc.__class__.__name__}: "
                f"{mask_secrets(str(exc))}"
            ) from None
        if 200 <= status < 300:
            return
        message = f"POST {mask_secrets(self.url)} answered {status}"
        if status in (408, 429) or status >= 500:
            raise RetryableDriverError(message)
        raise PermanentDriverError(message)


def _payload(txn: PushTransaction, events: list[PushEvent]) -> dict[str, Any]:
    """The transaction as `mailpush events tail` shows it, with only the subscribed events."""
    full = transaction_to_dict(txn)
    rendered = full["events"]
    assert isinstance(rendered, list)
    selected = {id(e) for e in events}
    full["events"] = [
        shown for event, shown in zip(txn.events, rendered, strict=True) if id(event) in selected
    ]
    return full
