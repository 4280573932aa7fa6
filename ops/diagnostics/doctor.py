"""Runs every probe a caller configured and assembles the report.

A probe that fails in a way its own handling did not foresee becomes one critical check
naming the error, so one broken dependency never hides the others' results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ops.diagnostics.check import Check, Status
from ops.diagnostics.platform import PlatformExpectations
from ops.diagnostics.probes.errors import describe
from ops.diagnostics.probes.vault import VaultAccess
from ops.diagnostics.report import Report, build_report
from ops.diagnostics.settings import DoctorSettings
from runtime.secrets.clock import utc_now

__all__ = ["DoctorTargets", "run_doctor"]


@dataclass(frozen=True)
class DoctorTargets:
    """Where each dependency answers; None: not checked (the report says so)."""

    kubernetes: bool = True
    kubeconfig: Path | None = None
    kube_context: str | None = None
    redis_url: str | None = None
    redis_password_file: Path | None = None
    prometheus_url: str | None = None
    vault: VaultAccess | None = None
    cost_url: str | None = None
    cost_token_file: Path | None = None
    not_checked: list[str] = field(default_factory=list)


def _guarded(name: str, probe: Callable[[], list[Check]]) -> list[Check]:
    try:
        return probe()
    except Exception as err:
        return [
            Check(
                name=name,
                status=Status.CRITICAL,
                value=None,
                threshold="the probe completes",
                detail=describe(err),
                advice="An unexpected failure of the doctor's probe: report it with this error.",
            )
        ]


def run_doctor(
    stack: str,
    expect: PlatformExpectations,
    targets: DoctorTargets,
    settings: DoctorSettings,
    now: Callable[[], datetime] = utc_now,
) -> Report:
    # Imported here: each probe pulls its client library only when it runs.
    from ops.diagnostics.probes.cost import cost_checks
    from ops.diagnostics.probes.kubernetes import kubernetes_checks
    from ops.diagnostics.probes.prometheus import prometheus_checks
    from ops.diagnostics.probes.redis import redis_checks
    from ops.diagnostics.probes.vault import vault_checks

    checks: list[Check] = []
    skipped = list(targets.not_checked)
    timeout = settings.timeout_s
    if targets.kubernetes:
        checks += _guarded(
            "kubernetes",
            lambda: kubernetes_checks(expect, targets.kubeconfig, targets.kube_context, timeout),
        )
    else:
        skipped.append("kubernetes (--no-kubernetes)")
    if targets.redis_url is not None:
        url = targets.redis_url
        checks += _guarded(
            "redis", lambda: redis_checks(url, targets.redis_password_file, settings)
        )
    else:
        skipped.append("redis (give --redis-url)")
    if targets.prometheus_url is not None:
        prometheus = targets.prometheus_url
        checks += _guarded("prometheus", lambda: prometheus_checks(prometheus, expect, settings))
    else:
        skipped.append("prometheus (give --prometheus-url)")
    if targets.vault is not None:
        access = targets.vault
        checks += _guarded("vault", lambda: vault_checks(access, expect, settings, now))
    else:
        skipped.append("vault (give --vault-address)")
    if targets.cost_url is not None:
        cost = targets.cost_url
        checks += _guarded(
            "cost", lambda: cost_checks(cost, targets.cost_token_file, expect, settings)
        )
    else:
        skipped.append("cost (give --cost-url)")
    return build_report(stack, checks, skipped)
