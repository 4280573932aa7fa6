"""The one convention of every service's Redis key layout.

A service's keys are `agentops:{<group>}:<name>[:<part>…]`. The braces are Redis Cluster's hash
tag: only the text between them picks the slot, so every key of one group lives in one slot, on
one shard, and a Lua script or a MULTI may touch any keys of one group together (a cluster
refuses keys of two slots in one script with CROSSSLOT). A standalone primary or Sentinel
ignores the braces. Each service's `keys` module spells its keys from `keyspace()` and lists
them in its `LAYOUT`; tests, benchmarks and tools import that module, never a literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from redis.crc import key_slot

__all__ = ["ROOT", "KeyLayout", "keyspace", "slot"]

ROOT: Final = "agentops"


def keyspace(group: str) -> str:
    """The prefix of a group's keys: `agentops:{group}` (the hash tag is the group)."""
    if not group or any(c in group for c in "{}:"):
        raise ValueError(f"a key group is a name without braces or colons, not {group!r}")
    return f"{ROOT}:{{{group}}}"


def slot(key: str) -> int:
    """The cluster slot (0–16383) a key hashes to, by its hash tag when it has one."""
    return int(key_slot(key.encode()))


@dataclass(frozen=True)
class KeyLayout:
    """One row of a service's key-layout table: a key pattern, its Redis type, what it holds
    and which scripts touch it together with other keys of its group."""

    pattern: str
    kind: str
    holds: str
    scripts: tuple[str, ...] = ()
