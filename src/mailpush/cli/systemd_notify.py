"""systemd's readiness protocol (sd_notify) in a few lines, without a dependency.

With `Type=notify` systemd passes `$NOTIFY_SOCKET`, a datagram socket, and waits
for `READY=1` before it counts the service as started: units ordered after
mailpush (an MTA delivering over LMTP) then start only once the ports accept.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify"]


def notify(state: str) -> bool:
    """Send `state` (e.g. ``READY=1``) to systemd; False when not run by systemd.

    A failure to send is not an error: systemd's own timeout reports a service
    that never became ready.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True
