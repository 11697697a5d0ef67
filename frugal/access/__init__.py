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
    ROLES,
    SECRET_PREFIX,
    ApiKey,
    KeyRing,
    KeyStore,
    KeyWatcher,
    Role,
    digest_of,
)
from frugal.access.ratelimit import RateLimiter, TokenBucket

__all__ = [
    "ROLES",
    "SECRET_PREFIX",
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
