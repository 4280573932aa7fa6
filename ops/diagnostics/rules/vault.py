"""Vault: unsealed and initialised, and every secret younger than the rotation policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ops.diagnostics.check import Check, Status
from ops.diagnostics.rules.common import RUNBOOK
from ops.diagnostics.thresholds import Bounds, at_or_above

__all__ = ["SecretAge", "seal_check", "secret_age_check"]


@dataclass(frozen=True)
class SecretAge:
    path: str  # with the mount, as audit records name it
    written: datetime  # creation of the current version: the last rotation


def seal_check(health: Mapping[str, Any]) -> Check:
    """From `sys/health` (its body is the same whatever the HTTP code)."""
    threshold = "initialized and unsealed"
    version = str(health.get("version", ""))
    if not health.get("initialized", False):
        return Check(
            name="vault.seal",
            status=Status.CRITICAL,
            value="uninitialized",
            threshold=threshold,
            detail=version,
            advice=f"Initialise Vault (`vault operator init`); see {RUNBOOK} (Vault unseal).",
        )
    if health.get("sealed", True):
        return Check(
            name="vault.seal",
            status=Status.CRITICAL,
            value="sealed",
            threshold=threshold,
            detail=f"{version}: services cannot read secrets or renew their leases",
            advice=f"Unseal Vault and find why it sealed; see {RUNBOOK} (Vault unseal).",
        )
    role = "standby" if health.get("standby") else "active"
    return Check(
        name="vault.seal",
        status=Status.HEALTHY,
        value="unsealed",
        threshold=threshold,
        detail=f"{version}, {role}",
    )


def _age_status(days: float, max_age_days: int, notice_days: int) -> Status:
    if notice_days == 0:  # no notice period: only a secret past the policy counts
        return Status.CRITICAL if days >= max_age_days else Status.HEALTHY
    return at_or_above(days, Bounds(max(max_age_days - notice_days, 0), max_age_days))


def secret_age_check(
    ages: Sequence[SecretAge], max_age_days: int, notice_days: int, now: datetime
) -> Check:
    """The oldest secret against the stack's `vault.secretMaxAgeDays`; a warning
    `notice_days` before a secret is due."""
    threshold = f"age < {max_age_days} d (warning from {max(max_age_days - notice_days, 0)} d)"
    if not ages:
        return Check(
            name="vault.secret_age",
            status=Status.HEALTHY,
            value=None,
            threshold=threshold,
            detail="no secret stored under the platform's prefixes",
        )
    days = {a.path: (now - a.written) / timedelta(days=1) for a in ages}
    verdicts = {p: _age_status(d, max_age_days, notice_days) for p, d in days.items()}
    oldest = max(days, key=lambda p: days[p])
    overdue = sorted(p for p, s in verdicts.items() if s is Status.CRITICAL)
    due = sorted(p for p, s in verdicts.items() if s is Status.WARNING)
    status = verdicts[oldest]
    notes = [f"{len(ages)} secrets, oldest {oldest}"]
    if overdue:
        notes.append(f"past the policy: {', '.join(overdue)}")
    if due:
        notes.append(f"due within {notice_days} d: {', '.join(due)}")
    return Check(
        name="vault.secret_age",
        status=status,
        value=round(days[oldest], 1),
        threshold=threshold,
        detail="; ".join(notes),
        advice=None
        if status is Status.HEALTHY
        else f"Rotate {', '.join(overdue or due)} (`rotate_api_keys`, then destroy the old "
        f"version after its grace period); see {RUNBOOK} (secret rotation).",
    )
