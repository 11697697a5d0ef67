"""Groups of ``frugal`` sub-commands that would make cli.py too long; cli.py registers them."""

from frugal.commands.access import audit, keys, ledger
from frugal.commands.optimize import check, plan, profile, prune, quantize

__all__ = ["audit", "check", "keys", "ledger", "plan", "profile", "prune", "quantize"]
