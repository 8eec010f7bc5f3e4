"""What a script can call: `dovecot.*`, `mailpush.*`, the host functions behind them, event tables.

Self-contained: nothing here imports the engine that runs scripts. See the
package docstring for where a new function goes.
"""
