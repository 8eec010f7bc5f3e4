"""The `mailpush` command: serve, deliver, manage users, check configuration.

Every subcommand reads the same configuration file (`--config`, or the
embedded defaults), so `mailpush user add` edits exactly the passwd-file the
server reads. Errors an admin can fix are printed as one line, without a
traceback, and give a non-zero exit status.

Layout: `main.py` builds the parser from one module per command group
(`serve`, `deliver`, `user`, `queue`, `metadata`, `lua`, `events`, `config`),
each with a `register` function adding its subcommands; `lua_tryout.py` is
what `mailpush lua` runs; `exit_status.py`, `config_file.py` and
`store_session.py` are what the groups share.
"""

from .main import main

__all__ = ["main"]
