"""The cost engine's Redis key layout: every key it uses, spelled here only.

All of them form one group, `agentops:{cost}` (see `runtime.service.keys`), so an operator can
find, size or flush them, and so a cluster keeps them in one slot: recording a call settles its
reservation, adds it to the hour, day and month ledgers and turns the hourly limits' hold into
its actual cost, for the platform and the team, in one script; a reservation checks every
budget window and the held amounts in one script. Splitting the group (per scope and window)
would split those steps. The Lua scripts receive these names as KEYS; no script builds a key
from data it reads. `LAYOUT` is the table of what the group holds.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Final

from runtime.service.keys import KeyLayout, keyspace

__all__ = [
    "EVENTS",
    "GROUP",
    "LAYOUT",
    "PLATFORM",
    "PREFIX",
    "RESERVATIONS",
    "RESERVATION_EXPIRY",
    "RESERVED",
    "alert_mark",
    "buckets",
    "ledger_field",
    "limit_held",
    "limit_holds",
    "limit_log",
    "limit_sums",
    "probe",
    "seen",
    "team_scope",
    "tool_calls",
    "usage",
]

GROUP: Final = "cost"
PREFIX: Final = keyspace(GROUP)
# id → "<nano-dollars>|<team>" of every open reservation.
RESERVATIONS: Final = f"{PREFIX}:reservations"
# id scored by its expiry (unix ms): the order in which unconfirmed reservations lapse.
RESERVATION_EXPIRY: Final = f"{PREFIX}:reservations:expiry"
# scope ("platform" | "team:<name>") → nano-dollars held by open reservations.
RESERVED: Final = f"{PREFIX}:reserved"
# Budget alerts fired (a stream operators and the CLI can read).
EVENTS: Final = f"{PREFIX}:events"

PLATFORM: Final = "platform"


def team_scope(team: str) -> str:
    """The `scope` label value of a team, as the alert catalogue expects it."""
    return f"team:{team}"


def buckets(at: dt.datetime) -> dict[str, str]:
    """The hour, day and month (UTC) a moment falls in."""
    utc = at.astimezone(dt.UTC)
    return dict(_buckets(utc.year, utc.month, utc.day, utc.hour))


@functools.lru_cache(maxsize=64)
def _buckets(year: int, month: int, day: int, hour: int) -> tuple[tuple[str, str], ...]:
    # Every call on the hot path asks for the current hour: formatted once per hour.
    at = dt.datetime(year, month, day, hour, tzinfo=dt.UTC)
    return (
        ("hour", at.strftime("%Y-%m-%dT%H")),
        ("day", at.strftime("%Y-%m-%d")),
        ("month", at.strftime("%Y-%m")),
    )


def usage(window: str, bucket: str) -> str:
    """The ledger hash of one hour, day or month."""
    return f"{PREFIX}:usage:{window}:{bucket}"


def ledger_field(scope: str) -> str:
    """The field of a ledger hash holding a scope's spend in nano-dollars."""
    if scope == PLATFORM:
        return "cost:total"
    if scope.startswith("team:"):
        return f"cost:team:{scope[len('team:') :]}"
    raise ValueError(f"unknown budget scope {scope!r}")


def probe(instance: str) -> str:
    """A key /ready writes: a write, unlike a ping, fails while Redis is out of memory."""
    return f"{PREFIX}:probe:{instance}"


def seen(idempotency_key: str) -> str:
    return f"{PREFIX}:seen:{idempotency_key}"


def limit_log(scope: str) -> str:
    """Sorted set of admitted calls in the sliding hour: member "<id>|<tokens>|<nano>"."""
    return f"{PREFIX}:limit:{scope}:log"


def limit_sums(scope: str) -> str:
    """Running sums (requests, tokens, cost) over the members of `limit_log(scope)`."""
    return f"{PREFIX}:limit:{scope}:sums"


def limit_held(scope: str) -> str:
    """Call id → its member of `limit_log(scope)` while the call holds its maximum there."""
    return f"{PREFIX}:limit:{scope}:held"


def limit_holds(scope: str) -> str:
    """Ids of `limit_held(scope)` scored by when their hold lapses (unix ms)."""
    return f"{PREFIX}:limit:{scope}:holds"


def alert_mark(scope: str, window: str, bucket: str, threshold: str) -> str:
    return f"{PREFIX}:alerted:{scope}:{window}:{bucket}:{threshold}"


def tool_calls(scope: str) -> str:
    """Sorted set of the MCP tool calls admitted in the sliding hour, scored by admission."""
    return f"{PREFIX}:tools:{scope}"


_RECORD = ("record",)
LAYOUT: Final = (
    KeyLayout(seen("<idempotency key>"), "string", "a recorded call (replays no-op)", _RECORD),
    KeyLayout(
        usage("<hour|day|month>", "<bucket>"),
        "hash",
        "spend, tokens, calls per model / agent type / team in one window",
        ("record", "reserve"),
    ),
    KeyLayout(RESERVATIONS, "hash", "open reservation → amount|team", ("reserve", "record")),
    KeyLayout(RESERVATION_EXPIRY, "zset", "reservation → when it lapses", ("reserve", "record")),
    KeyLayout(RESERVED, "hash", "scope → amount held by open reservations", ("reserve", "record")),
    KeyLayout(
        limit_log("<scope>"), "zset", "calls admitted in the sliding hour", ("admit", "record")
    ),
    KeyLayout(limit_sums("<scope>"), "hash", "requests, tokens, cost of that hour", ("admit",)),
    KeyLayout(limit_held("<scope>"), "hash", "call → its held maximum", ("admit", "record")),
    KeyLayout(limit_holds("<scope>"), "zset", "call → when its hold lapses", ("admit", "record")),
    KeyLayout(
        alert_mark("<scope>", "<window>", "<bucket>", "<threshold>"),
        "string",
        "a budget alert fired once",
    ),
    KeyLayout(EVENTS, "stream", "budget alerts fired"),
    KeyLayout(
        tool_calls("<scope>"),
        "zset",
        "MCP tool calls admitted in the sliding hour",
        ("tool_calls",),
    ),
)
