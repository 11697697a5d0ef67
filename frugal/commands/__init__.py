"""Groups of ``frugal`` sub-commands that would make cli.py too long; cli.py registers them."""

from frugal.commands.access import audit, keys, ledger

__all__ = ["audit", "keys", "ledger"]
