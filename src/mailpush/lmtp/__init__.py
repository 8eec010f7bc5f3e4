"""LMTP (RFC 2033) delivery front end."""

from .server import LmtpOptions, LmtpServer, split_detail

__all__ = ["LmtpOptions", "LmtpServer", "split_detail"]
