"""The PostgreSQL fixtures (tests/pg_server.py), for the dashboard's stats on a shared ledger."""

from tests.pg_server import pg_url, postgres

__all__ = ["pg_url", "postgres"]
