"""Access and protection: API keys, per-key rate limits, the audit log, payload capture.

The admission stage that uses them is ``frugal/serving/admission.py``; daily budgets are sums
over the ledger (``frugal/accounting/budgets.py``). See docs/security.md.
"""

from frugal.access.anchor import (
    AuditKey,
    Head,
    parse_head,
    read_audit_key,
    read_head_file,
    write_new_key,
)
from frugal.access.audit import AuditEntry, AuditLog, Verdict, cli_actor
from frugal.access.capture import Capture, Redactor
from frugal.access.keys import (
    BUDGET_USD_DAY_MAX,
    ROLES,
    RPS_MAX,
    RPS_MIN,
    SECRET_PREFIX,
    TIER_MAX_CHARS,
    TOKENS_DAY_MAX,
    ApiKey,
    KeyRing,
    KeyStore,
    KeyWatcher,
    Role,
    digest_of,
)
from frugal.access.ratelimit import MAX_WAIT_S, RateLimiter, TokenBucket

__all__ = [
    "BUDGET_USD_DAY_MAX",
    "MAX_WAIT_S",
    "ROLES",
    "RPS_MAX",
    "RPS_MIN",
    "SECRET_PREFIX",
    "TIER_MAX_CHARS",
    "TOKENS_DAY_MAX",
    "ApiKey",
    "AuditEntry",
    "AuditKey",
    "AuditLog",
    "Capture",
    "Head",
    "KeyRing",
    "KeyStore",
    "KeyWatcher",
    "RateLimiter",
    "Redactor",
    "Role",
    "TokenBucket",
    "Verdict",
    "cli_actor",
    "digest_of",
    "parse_head",
    "read_audit_key",
    "read_head_file",
    "write_new_key",
]
