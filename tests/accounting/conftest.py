"""The PostgreSQL ledger's fixtures (tests/pg_server.py): a session cluster, a fresh database."""

from tests.pg_server import own_postgres, pg_url, postgres

__all__ = ["own_postgres", "pg_url", "postgres"]
