"""Emergency mode: while the critical success-rate alert fires, only high-priority work is
admitted. Alertmanager's webhook switches it; the state lives in Redis, so every replica and a
restarted manager agree on it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from contracts.telemetry.alerts import EMERGENCY_ALERT
from contracts.telemetry.logs import AuditEvent
from runtime.manager import keys as k
from runtime.manager.constants import Priority
from runtime.service import redis as rd
from runtime.service.logs import audit

log = logging.getLogger("agentops.manager.emergency")

__all__ = [
    "AlertmanagerAlert",
    "AlertmanagerWebhook",
    "EmergencyState",
    "EmergencySwitch",
    "admits",
    "emergency_changes",
]


class AlertmanagerAlert(BaseModel):
    """One alert of Alertmanager's webhook payload (version 4); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(max_length=64)
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9a-zA-Z]+$")


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str = Field(max_length=8)
    status: Literal["firing", "resolved"]
    receiver: str = Field(max_length=256)
    alerts: list[AlertmanagerAlert] = Field(max_length=1000)


def emergency_changes(payload: AlertmanagerWebhook) -> tuple[set[str], set[str]]:
    """(fingerprints now firing, fingerprints resolved) of the emergency alert."""
    firing: set[str] = set()
    resolved: set[str] = set()
    for alert in payload.alerts:
        if alert.labels.get("alertname") != EMERGENCY_ALERT:
            continue
        (firing if alert.status == "firing" else resolved).add(alert.fingerprint)
    return firing, resolved


def admits(active: bool, priority: Priority) -> bool:
    return not active or priority >= Priority.HIGH


@dataclass(frozen=True)
class EmergencyState:
    active: bool
    since: float | None
    firing_alerts: int


# KEYS: state hash, firing set   ARGV: now, n firing, firing..., resolved...
_SWITCH = """
local n = tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('SADD', KEYS[2], ARGV[i]) end
for i = 3 + n, #ARGV do redis.call('SREM', KEYS[2], ARGV[i]) end
local count = redis.call('SCARD', KEYS[2])
local active = redis.call('HGET', KEYS[1], 'active') == '1'
if count > 0 and not active then
  redis.call('HSET', KEYS[1], 'active', '1', 'since', ARGV[1])
elseif count == 0 and active then
  redis.call('HSET', KEYS[1], 'active', '0', 'since', '', 'ended', ARGV[1])
end
return count
"""


class EmergencySwitch:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._switch = redis.register_script(_SWITCH)

    async def apply(self, payload: AlertmanagerWebhook) -> EmergencyState:
        firing, resolved = emergency_changes(payload)
        await self._switch(
            keys=[k.EMERGENCY, k.EMERGENCY_ALERTS],
            args=[repr(time.time()), len(firing), *sorted(firing), *sorted(resolved)],
        )
        state = await self.state()
        if firing or resolved:
            log.warning(
                "emergency mode %s: %d alert(s) firing",
                "on" if state.active else "off",
                state.firing_alerts,
                extra=audit(
                    AuditEvent.EMERGENCY_MODE,
                    emergency_active=state.active,
                    firing=sorted(firing),
                    resolved=sorted(resolved),
                ),
            )
        return state

    async def state(self) -> EmergencyState:
        raw = await rd.hgetall(self.redis, k.EMERGENCY)
        count = int(await rd.reply(self.redis.scard(k.EMERGENCY_ALERTS)))
        active = raw.get("active") == "1"
        return EmergencyState(
            active=active,
            since=float(raw["since"]) if active and raw.get("since") else None,
            firing_alerts=count,
        )
