"""Request ids: the client's ``x-request-id`` when sane, else one made here, cheaply."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping

# A random per-process prefix and a counter: unique across processes and restarts, and cheap
# (os.urandom per request cost ~90 us on a VM whose getrandom goes through virtio-rng).
_ID_PREFIX = os.urandom(4).hex()
_id_counter = itertools.count()


def request_id_from(headers: Mapping[str, str]) -> str:
    """The client's ``x-request-id`` when it is sane, else a new one."""
    given = headers.get("x-request-id")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return new_request_id()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):08x}"


__all__ = ["new_request_id", "request_id_from"]
