"""`dovecot.storage`: Dovecot's mailbox constants, defined here and nowhere else.

The values are those of Dovecot 2.3.19's `mail-storage.h` and
`mailbox-attribute.h`, which `dlua_dovecot_storage_register` publishes; a
script passes them to `mailbox:status()` or compares them. lib/storage.lua
receives `LUA_STORAGE_CONSTANTS` as its `constants` argument when a state is
built (`api/library.py`), and `host_io.py` reads the `STATUS_*` items
`mailbox:status()` asks for: one definition for both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "LUA_STORAGE_CONSTANTS",
    "PERMANENT_FLAGS",
    "STATUS_FIRST_RECENT_UID",
    "STATUS_FIRST_UNSEEN_SEQ",
    "STATUS_HIGHESTMODSEQ",
    "STATUS_HIGHESTPVTMODSEQ",
    "STATUS_KEYWORDS",
    "STATUS_MESSAGES",
    "STATUS_PERMANENT_FLAGS",
    "STATUS_RECENT",
    "STATUS_UIDNEXT",
    "STATUS_UIDVALIDITY",
    "STATUS_UNSEEN",
    "STORAGE_CONSTANTS",
]

# enum mailbox_status_items
STATUS_MESSAGES: Final = 0x01
STATUS_RECENT: Final = 0x02
STATUS_UIDNEXT: Final = 0x04
STATUS_UIDVALIDITY: Final = 0x08
STATUS_UNSEEN: Final = 0x10
STATUS_FIRST_UNSEEN_SEQ: Final = 0x20
STATUS_KEYWORDS: Final = 0x40
STATUS_HIGHESTMODSEQ: Final = 0x80
STATUS_PERMANENT_FLAGS: Final = 0x200
STATUS_FIRST_RECENT_UID: Final = 0x400
STATUS_HIGHESTPVTMODSEQ: Final = 0x2000

#: Every name a script finds in `dovecot.storage`, with its value.
STORAGE_CONSTANTS: Final[Mapping[str, int | str]] = MappingProxyType({
    "STATUS_MESSAGES": STATUS_MESSAGES,
    "STATUS_RECENT": STATUS_RECENT,
    "STATUS_UIDNEXT": STATUS_UIDNEXT,
    "STATUS_UIDVALIDITY": STATUS_UIDVALIDITY,
    "STATUS_UNSEEN": STATUS_UNSEEN,
    "STATUS_FIRST_UNSEEN_SEQ": STATUS_FIRST_UNSEEN_SEQ,
    "STATUS_KEYWORDS": STATUS_KEYWORDS,
    "STATUS_HIGHESTMODSEQ": STATUS_HIGHESTMODSEQ,
    "STATUS_PERMANENT_FLAGS": STATUS_PERMANENT_FLAGS,
    "STATUS_FIRST_RECENT_UID": STATUS_FIRST_RECENT_UID,
    "STATUS_HIGHESTPVTMODSEQ": STATUS_HIGHESTPVTMODSEQ,
    # enum mailbox_flags
    "MAILBOX_FLAG_READONLY": 0x01,
    "MAILBOX_FLAG_SAVEONLY": 0x02,
    "MAILBOX_FLAG_DROP_RECENT": 0x04,
    "MAILBOX_FLAG_NO_INDEX_FILES": 0x10,
    "MAILBOX_FLAG_KEEP_LOCKED": 0x20,
    "MAILBOX_FLAG_IGNORE_ACLS": 0x100,
    "MAILBOX_FLAG_AUTO_CREATE": 0x1000,
    "MAILBOX_FLAG_AUTO_SUBSCRIBE": 0x2000,
    # enum mailbox_sync_flags
    "MAILBOX_SYNC_FLAG_FULL_READ": 0x01,
    "MAILBOX_SYNC_FLAG_FULL_WRITE": 0x02,
    "MAILBOX_SYNC_FLAG_FAST": 0x04,
    "MAILBOX_SYNC_FLAG_NO_EXPUNGES": 0x08,
    "MAILBOX_SYNC_FLAG_FIX_INCONSISTENT": 0x40,
    "MAILBOX_SYNC_FLAG_EXPUNGE": 0x80,
    "MAILBOX_SYNC_FLAG_FORCE_RESYNC": 0x100,
    # mailbox-attribute.h
    "MAILBOX_ATTRIBUTE_PREFIX_DOVECOT": "vendor/vendor.dovecot/",
    "MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT": "vendor/vendor.dovecot/pvt/",
    "MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER": "vendor/vendor.dovecot/pvt/server/",
})

#: The same, as a state (strings as bytes) takes it.
LUA_STORAGE_CONSTANTS: Final[Mapping[bytes, int | bytes]] = MappingProxyType({
    name.encode(): value.encode() if isinstance(value, str) else value
    for name, value in STORAGE_CONSTANTS.items()
})

#: `\Answered \Flagged \Deleted \Seen \Draft`: what a client may store (the
#: `permanent_flags` `mailbox:status()` reports; not a `dovecot.storage` name).
PERMANENT_FLAGS: Final = 0x1F
