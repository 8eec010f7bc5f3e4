"""mailpush: an LMTP + IMAP mail server whose core is Dovecot-compatible push notifications."""

__version__ = "0.1.0"
__all__ = ["__version__"]
