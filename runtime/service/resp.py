"""Redis commands packed into RESP by hiredis (C) instead of redis-py's asyncio packer (Python).

redis-py's blocking client already packs with hiredis whenever it is installed; its asyncio
connections (5.x) still encode every argument and join the frame in Python, and on the task
path that was 10–18 % of a service's CPU (a usage record alone is an EVALSHA of 40 arguments).
The bytes are the same (tests/runtime/service/test_resp.py compares them with redis-py's own
packer); what redis-py refuses (a bool, an object that is not str, bytes, memoryview, int or
float) is refused here with the same DataError.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection
from redis.exceptions import DataError

__all__ = ["packed", "packing_class"]


def packed(*args: Any) -> bytes:
    """One command as RESP. A command name holding a space ("CONFIG GET") is split into its
    words, as redis-py does."""
    first = args[0]
    if (isinstance(first, str) and " " in first) or (isinstance(first, bytes) and b" " in first):
        args = (*first.split(), *args[1:])
    try:  # hiredis refuses a bool, as redis-py does
        frame: bytes = hiredis.pack_command(args)
    except TypeError as err:
        if not any(isinstance(a, memoryview) for a in args):
            raise DataError(f"{err} (got {[type(a).__name__ for a in args]})") from err
        # redis-py sends a memoryview's bytes; hiredis takes bytes only.
        return packed(*(bytes(a) if isinstance(a, memoryview) else a for a in args))
    return frame


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        return [packed(*args)]


class _Plain(_HiredisPacking, Connection):
    pass


class _SSL(_HiredisPacking, SSLConnection):
    pass


class _Unix(_HiredisPacking, UnixDomainSocketConnection):
    pass


class _Sentinel(_HiredisPacking, SentinelManagedConnection):
    pass


class _SentinelSSL(_HiredisPacking, SentinelManagedSSLConnection):
    pass


# Most specific first: the Sentinel classes subclass Connection / SSLConnection.
_PACKING: tuple[tuple[type[AbstractConnection], type[AbstractConnection]], ...] = (
    (SentinelManagedSSLConnection, _SentinelSSL),
    (SentinelManagedConnection, _Sentinel),
    (SSLConnection, _SSL),
    (UnixDomainSocketConnection, _Unix),
    (Connection, _Plain),
)


def packing_class(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    """The same connection class, packing with hiredis; a class not known here is kept."""
    if issubclass(cls, _HiredisPacking):
        return cls
    for base, packing in _PACKING:
        if cls is base:
            return packing
    return cls
