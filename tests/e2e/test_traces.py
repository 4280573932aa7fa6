"""Traces end to end on the local platform: every service exports its spans over OTLP/HTTP to a
receiver the test runs, and a task's spans, from the manager's submit to the cost engine's usage
record, arrive as one trace with each span under the one that caused it."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.platform import eventually, local_platform
from tests.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver

MANAGER, WORKER, COST = "agent-manager", "agent-worker", "cost-engine"
# (service, span) → (service, span) of its parent, for one task's trace.
TASK_TRACE = {
    (WORKER, "attempt"): (MANAGER, "submit"),
    (WORKER, "reserve"): (WORKER, "attempt"),
    (COST, "reservation"): (WORKER, "reserve"),
    (WORKER, "handler"): (WORKER, "attempt"),
    (WORKER, "usage record"): (WORKER, "attempt"),
    (COST, "usage record"): (WORKER, "usage record"),
}


def tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "AGENTOPS_TRACE_EXPORTER": "otlp",
        "AGENTOPS_OTLP_ENDPOINT": receiver.endpoint,
        # The SDK's batch export every 200 ms instead of 5 s: the test waits less.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def task_trace(receiver: OtlpReceiver, task_id: str) -> dict[tuple[str, str], ReceivedSpan] | None:
    """The spans of the task's trace by (service, name), once all of them arrived."""
    spans = list(receiver.spans)
    (submit,) = [s for s in spans if s.name == "submit" and s.attributes.get("task_id") == task_id]
    found = {(s.service, s.name): s for s in spans if s.trace_id == submit.trace_id}
    return found if set(TASK_TRACE) <= set(found) else None


def test_a_task_is_one_trace_from_submit_to_usage_record(tmp_path: Path) -> None:
    with (
        otlp_receiver() as receiver,
        local_platform(tmp_path, workers=1, env=tracing_env(receiver)) as platform,
    ):
        ids = [
            platform.submit(payload={"prompt": f"traced {i}"}).json()["task_id"] for i in range(3)
        ]
        records = eventually("3 tasks finished", lambda: platform.finished(ids))
        assert {r["status"] for r in records} == {"succeeded"}
        trace_ids = set()
        for task_id in ids:
            found = eventually(f"the trace of {task_id}", lambda t=task_id: task_trace(receiver, t))
            submit = found[(MANAGER, "submit")]
            assert submit.parent_span_id == "", "the submit span starts the trace"
            for child, parent in TASK_TRACE.items():
                assert found[child].parent_span_id == found[parent].span_id, (child, parent)
            assert found[(WORKER, "attempt")].attributes["task_id"] == task_id
            for key in ((COST, "reservation"), (COST, "usage record")):
                assert found[key].attributes["task_id"] == task_id
            trace_ids.add(submit.trace_id)
        assert len(trace_ids) == 3, "each task has a trace of its own"
        assert not receiver.rejected
