"""The audit marker of the runtime's JSON log lines, which the log shipper routes on.

A line whose JSON has the `audit` field is an audit event; the field's value names its kind.
The runtime sets it through `logging`'s `extra` (runtime/service/logs.py `audit`), and the
Fluent Bit config (infra/platform/logship.py) sends such lines to the audit log group and every
other line to the application log group. One field, defined here, read by both.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["AUDIT_FIELD", "AuditEvent"]

AUDIT_FIELD: Final = "audit"


class AuditEvent(StrEnum):
    """The kinds of audit event: the value of `AUDIT_FIELD` on a line."""

    SECRET_ACCESS = "secret_access"  # noqa: S105 (an event name, not a secret)
    EMERGENCY_MODE = "emergency_mode"
    BUDGET_ALERT = "budget_alert"
    DOWNGRADE = "downgrade"
