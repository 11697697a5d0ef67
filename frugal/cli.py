"""The ``frugal`` command: the verb table; each verb lives in ``frugal/commands/``.

Errors are mapped to a message and an exit code in one place (``FrugalGroup.invoke``): a
FrugalError prints ``error: ...`` (and its hint) and exits 2, never a traceback. Exit 1 is kept
for verdicts: a command that ran and found something wrong (``check`` over budget, ``audit verify``
on a broken chain) says so and exits 1, so CI can tell "the gate said no" from "the gate is
broken".
"""

from __future__ import annotations

import sys
from typing import Any

import click

from frugal.commands import (
    alerts,
    audit,
    cache,
    calibrate,
    check,
    demo,
    distill,
    export,
    keys,
    ledger,
    plan,
    profile,
    prune,
    quantize,
    report,
    route,
    serve,
    simulate,
    validate,
)
from frugal.commands.exits import EXIT_BAD_INPUT
from frugal.errors import FrugalError


class FrugalGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FrugalError as error:
            click.secho(f"error: {error.message}", fg="red", err=True)
            if error.hint:
                click.echo(f"hint: {error.hint}", err=True)
            ctx.exit(EXIT_BAD_INPUT)


@click.group(cls=FrugalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="frugal")
def main() -> None:
    """frugal: serve models at the lowest cost per request, and show where the money goes.

    Start with `frugal demo`, then write a frugal.yaml (see docs/config.md) and
    `frugal validate` / `frugal serve` it. `frugal report` reads the cost ledger.
    """


# In the order `frugal --help` has always listed them (click sorts by name anyway).
for command in (
    serve, validate, report, demo, cache, profile, quantize, prune, plan, check, calibrate, route,
    keys, audit, ledger, simulate, export, alerts, distill,
):  # fmt: skip
    main.add_command(command)

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
