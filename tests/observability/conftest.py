"""The PostgreSQL fixtures (tests/pg_server.py): the dashboard's stats and `frugal alerts check`
on a PostgreSQL ledger."""

from tests.pg_server import pg_url, postgres

__all__ = ["pg_url", "postgres"]
