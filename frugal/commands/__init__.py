"""Groups of ``frugal`` sub-commands that would make cli.py too long; cli.py registers them."""

from frugal.commands.access import audit, keys, ledger
from frugal.commands.optimize import check, plan, profile, prune, quantize
from frugal.commands.route import route
from frugal.commands.routing import calibrate

__all__ = [
    "audit",
    "calibrate",
    "check",
    "keys",
    "ledger",
    "plan",
    "profile",
    "prune",
    "quantize",
    "route",
]
