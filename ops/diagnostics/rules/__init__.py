"""Threshold rules: measurements in, `Check`s out. Pure functions, one module per dependency."""

from ops.diagnostics.rules.common import RUNBOOK, unreachable

__all__ = ["RUNBOOK", "unreachable"]
