"""Log output for the whole process, with secrets masked before anything is written.

Driver URLs carry passwords (`http://login:pass@host/...`); any log line, from
our code or a library's, passes through `SecretMaskingFilter` so the
password never reaches a log file.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

# The password runs to the LAST `@` of the authority, as URL parsers read it, so
# `u:se@cret@host` and a raw `/` in a password are masked whole. When a path
# also holds an `@` this masks too much (the host), never too little.
_URL_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*):\S*@(?=[^\s@/]*(?:[/?#\s]|$))"
)

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def mask_secrets(text: str) -> str:
    """`http://user:secret@host` → `http://user:***@host`, anywhere in `text`."""
    return _URL_USERINFO.sub(r"\g<scheme>\g<user>:***@", text)


class SecretMaskingFilter(logging.Filter):
    """Rewrites each record's final message with passwords masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = mask_secrets(text)
        return True


def configure_logging(log_path: Path | None = None, debug: bool = False) -> None:
    """Send log records to `log_path` (or stderr), masking secrets."""
    handler: logging.Handler
    if log_path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SecretMaskingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # aiosmtpd logs every connection at INFO; ours say what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
