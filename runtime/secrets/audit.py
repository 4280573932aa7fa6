"""An audit record for every Vault access: who, which operation on which path, when, from
which pod, and how it ended.

A record has no field that could hold a secret: values, keys listed under a path, plaintexts
and ciphertexts never reach it, so a sink can ship it anywhere. Records go to the
`agentops.secrets.audit` logger as one JSON object per line, and to any other sink given
(the bounded `RecentAudit` keeps the last ones in memory for inspection).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from contracts.telemetry.logs import AuditEvent
from runtime.service.logs import audit

__all__ = [
    "LOGGER_NAME",
    "Actor",
    "AuditRecord",
    "AuditSink",
    "AuditTrail",
    "LogAudit",
    "RecentAudit",
]

LOGGER_NAME = "agentops.secrets.audit"


@dataclass(frozen=True)
class Actor:
    """Who Vault knows the client as (from the token's lookup-self after login)."""

    role: str | None = None
    service_account: str | None = None  # namespace/name, from Kubernetes auth
    entity_id: str | None = None
    display_name: str | None = None
    policies: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    actor: Actor
    pod: str | None
    operation: str
    path: str
    outcome: str  # "ok", or the failing SecretsError's outcome
    version: int | None = None
    error: str | None = None  # the SecretsError message: operation, path and cause only

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["at"] = self.at.isoformat()
        body["actor"]["policies"] = list(self.actor.policies)
        return body

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))


class AuditSink(Protocol):
    def emit(self, record: AuditRecord) -> None: ...


class LogAudit:
    """One JSON line per record; failures at WARNING so they stand out in the pod's log."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    def emit(self, record: AuditRecord) -> None:
        level = logging.INFO if record.outcome == "ok" else logging.WARNING
        self.logger.log(level, record.to_json(), extra=audit(AuditEvent.SECRET_ACCESS))


@dataclass
class RecentAudit:
    """The last `capacity` records, oldest first; bounded so a long-lived pod does not grow."""

    capacity: int = 1000
    _records: deque[AuditRecord] = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._records = deque(maxlen=self.capacity)

    def emit(self, record: AuditRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[AuditRecord]:
        with self._lock:
            return list(self._records)


class AuditTrail:
    """Fans each record out to every sink."""

    def __init__(self, sinks: Iterable[AuditSink] | None = None) -> None:
        self.sinks: list[AuditSink] = (
            list(sinks) if sinks is not None else [LogAudit(), RecentAudit()]
        )

    def emit(self, record: AuditRecord) -> None:
        for sink in self.sinks:
            sink.emit(record)
