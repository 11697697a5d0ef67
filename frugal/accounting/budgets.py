"""What each API key has spent today (UTC), in dollars and tokens, read from the ledger.

The ledger is the truth, so budgets survive restarts: at start (and every ``refresh``) the sums
of today's rows of other runs (earlier runs, other worker processes) are read from it, and this
run's own rows are counted in memory as they are recorded, before the ledger writer commits them.
Another process's spending is therefore seen with the refresh interval's delay; this one's at once.
"""

from __future__ import annotations

import calendar
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from frugal.accounting.ledger_store import open_reader
from frugal.config import is_postgres_url


def day_start(now: float) -> float:
    """The last UTC midnight, in unix seconds."""
    t = time.gmtime(now)
    return float(calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)))


@dataclass(slots=True)
class Spent:
    usd: float = 0.0
    tokens: int = 0


# Today's spend of every key, by the runs other than this one: one query for either store.
OTHERS_SPEND = (
    "SELECT key_name, SUM(cost_usd), SUM(tokens) FROM requests "
    "WHERE ts >= ? AND run_id != ? AND key_name != '' GROUP BY key_name"
)


class BudgetBook:
    """``ledger``: the SQLite file, or the postgresql:// URL (``password_env`` as in config)."""

    def __init__(
        self,
        ledger: Path | str,
        run_id: str,
        *,
        clock: Callable[[], float] = time.time,
        password_env: str | None = None,
    ) -> None:
        self.postgres = is_postgres_url(ledger)
        self.ledger = ledger if self.postgres else Path(ledger)
        self.password_env = password_env
        self.run_id = run_id
        self.clock = clock
        self.day = day_start(clock())
        self._own: dict[str, Spent] = {}
        self._others: dict[str, Spent] = {}

    def spent(self, key: str) -> Spent:
        self._roll()
        own = self._own.get(key)
        other = self._others.get(key)
        if other is None:
            return Spent(own.usd, own.tokens) if own else Spent()
        if own is None:
            return Spent(other.usd, other.tokens)
        return Spent(own.usd + other.usd, own.tokens + other.tokens)

    def add(self, key: str, usd: float, tokens: int) -> None:
        """This run's spending, counted as it is recorded (called on the event loop)."""
        self._roll()
        spent = self._own.get(key)
        if spent is None:
            spent = self._own[key] = Spent()
        spent.usd += usd
        spent.tokens += tokens

    def resets_at(self) -> float:
        return self.day + 86400.0

    def refresh(self) -> None:
        """Re-read today's sums of other runs from the ledger (blocking: call from a thread)."""
        start = day_start(self.clock())
        others: dict[str, Spent] = {}
        if self.postgres:
            # A connection per refresh (every few seconds): nothing held open between them.
            with open_reader(self.ledger, password_env=self.password_env) as reader:
                rows = reader.execute(OTHERS_SPEND, (start, self.run_id)).fetchall()
        elif Path(self.ledger).exists():
            db = sqlite3.connect(self.ledger, timeout=10.0)
            try:
                rows = db.execute(OTHERS_SPEND, (start, self.run_id)).fetchall()
            except sqlite3.OperationalError:  # a ledger created before keys existed
                rows = []
            finally:
                db.close()
        else:
            rows = []
        # PostgreSQL sums BIGINT tokens as NUMERIC: int() takes both.
        others = {name: Spent(float(usd or 0), int(tokens or 0)) for name, usd, tokens in rows}
        if start == self.day:
            self._others = others

    def _roll(self) -> None:
        start = day_start(self.clock())
        if start != self.day:  # midnight UTC: every budget starts again
            self.day = start
            self._own.clear()
            self._others.clear()


__all__ = ["BudgetBook", "Spent", "day_start"]
