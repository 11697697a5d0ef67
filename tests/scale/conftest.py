"""The PostgreSQL ledger's fixtures (tests/pg_server.py), for Ray replicas that share one."""

from tests.pg_server import pg_url, postgres

__all__ = ["pg_url", "postgres"]
