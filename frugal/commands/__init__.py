"""Every ``frugal`` sub-command, a module per verb or group of verbs; cli.py registers them."""

from frugal.commands.access import audit, keys, ledger
from frugal.commands.alerts import alerts
from frugal.commands.cache import cache
from frugal.commands.capacity import check, plan
from frugal.commands.demo import demo
from frugal.commands.distill import distill
from frugal.commands.export import export
from frugal.commands.profile import profile
from frugal.commands.report import report
from frugal.commands.route import route
from frugal.commands.routing import calibrate
from frugal.commands.serve import serve, validate
from frugal.commands.simulate import simulate
from frugal.commands.variants import prune, quantize

__all__ = [
    "alerts",
    "audit",
    "cache",
    "calibrate",
    "check",
    "demo",
    "distill",
    "export",
    "keys",
    "ledger",
    "plan",
    "profile",
    "prune",
    "quantize",
    "report",
    "route",
    "serve",
    "simulate",
    "validate",
]
