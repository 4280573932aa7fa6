"""The runtime's logs: one JSON object per line, for a log shipper to parse.

Every line has `time` (ISO 8601, UTC), `level`, `logger` and `message`; `task_id` while a task
is handled (the worker's run of it, the manager's task routes) and `trace_id`/`span_id` of the
current span when there is one, so a line leads to its trace. uvicorn's own loggers go through
the same handler. Nothing here adds a value from a request: no secret enters a line this way.

An audit event (secret access, emergency mode, budget alert, downgrade) is logged with
`extra=audit(AuditEvent...)`: its line carries `"audit": "<kind>"` (contracts/telemetry/logs.py),
which the log shipper routes to the audit log group.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from contracts.telemetry.logs import AUDIT_FIELD, AuditEvent

__all__ = ["TASK_ID", "audit", "bind_task", "configure_logging", "json_formatter"]

# The task the current asyncio task handles (a worker's run of one entry, a task request).
TASK_ID: ContextVar[str | None] = ContextVar("agentops_task_id", default=None)
_FIELDS: Final = "{asctime}{levelname}{name}{message}"
_RENAMED: Final = {"asctime": "time", "levelname": "level", "name": "logger"}
_QUIET: Final = ("httpx", "httpcore")


def bind_task(task_id: str) -> None:
    """Name `task_id` on every line logged for the rest of the current asyncio task (a request
    or a worker's run of one task: each runs in a context of its own)."""
    TASK_ID.set(task_id)


def audit(kind: AuditEvent, /, **fields: Any) -> dict[str, Any]:
    """The `extra` of an audit event's log line: the audit marker and the event's own fields."""
    return {AUDIT_FIELD: kind.value, **fields}


class _Correlation(logging.Filter):
    """Adds the task id and the current span's ids to a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_id = TASK_ID.get()
        if task_id is not None:
            record.task_id = task_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = trace.format_trace_id(span.trace_id)
            record.span_id = trace.format_span_id(span.span_id)
        return True


def json_formatter() -> logging.Formatter:
    """The JSON formatter of every runtime line (`configure_logging` installs it)."""
    formatter = JsonFormatter(
        _FIELDS,
        style="{",
        rename_fields=dict(_RENAMED),
        # uvicorn's copy of the message with terminal colours: noise in a log store.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )
    # ISO 8601 in UTC with milliseconds, whatever the host's zone.
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"
    formatter.converter = time.gmtime
    return formatter


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the root logger; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(_Correlation())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # The HTTP clients' line per request repeats what the request metrics count.
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
