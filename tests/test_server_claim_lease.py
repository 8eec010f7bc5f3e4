"""A server's dispatcher holds its claims under `mailpush_push_claim_lease`, and a reload
applies a new one (docs/postgresql.md#dispatch-across-nodes).

How the dispatcher uses the lease is tests/dispatch/test_claim_lease_setting.py's
subject; here, that the server hands it the setting, at start and at a reload.
"""

from __future__ import annotations

from pathlib import Path

from mailpush.config import load_settings
from mailpush.server import MailpushServer
from tests.conftest import write_config
from tests.support.http_receiver import HttpReceiver
from tests.test_server_reload import push_config, rewrite


async def test_the_dispatcher_takes_the_setting_s_lease_and_a_reload_applies_a_new_one(
    tmp_path: Path,
) -> None:
    receiver = HttpReceiver()
    await receiver.start()
    config = write_config(
        tmp_path, push_config(receiver.url) + "mailpush_push_claim_lease = 5s\n"
    )
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    try:
        assert server.dispatcher is not None
        assert server.dispatcher.claim_lease == 5.0
        rewrite(config, config.read_text().replace("= 5s", "= 1min"))
        outcome = await server.reload()
        assert outcome.applied, outcome.message
        assert outcome.restart_needed == ()
        assert server.dispatcher.claim_lease == 60.0
    finally:
        await server.stop()
        await receiver.stop()
