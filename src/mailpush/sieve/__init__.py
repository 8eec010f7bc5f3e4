"""Sieve filtering at delivery (RFC 5228 with fileinto, envelope, mailbox, copy,
imap4flags, body), configured with Dovecot's `sieve`, `sieve_before` and
`sieve_after` plugin settings.

`SieveFilingPlanner` plugs into the delivery agent; `compile_script` and
`run_script` are the compiler and runner it is built from.
"""

from .compiler import compile_script
from .message import Envelope, SieveMessage
from .planner import SieveFilingPlanner, build_sieve_planner
from .runner import SieveResult, run_script, run_sequence
from .script import SieveScript

__all__ = [
    "Envelope",
    "SieveFilingPlanner",
    "SieveMessage",
    "SieveResult",
    "SieveScript",
    "build_sieve_planner",
    "compile_script",
    "run_script",
    "run_sequence",
]
