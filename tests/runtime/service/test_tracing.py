"""The services' tracer: no span at all while tracing is off, the caller's trace still carried
on; OpenTelemetry's spans, parents and attributes once a provider is installed.

The tracers here are given their provider (the process-wide one can be installed once per
process); the end-to-end trace over real processes is tests/e2e/test_traces.py."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, SpanKind

from runtime.service import tracing
from runtime.service.tracing import Tracer, continued, current_traceparent

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
# What a task may carry: a caller's span, none, or something that is not a traceparent.
CARRIED = [PARENT, "", "00-not-a-trace-01"]


def _off() -> Tracer:
    return Tracer("test", provider=trace.ProxyTracerProvider)


@pytest.mark.parametrize("carried", CARRIED)
def test_off_a_span_in_a_given_context_carries_what_opentelemetrys_no_op_tracer_carries(
    carried: str,
) -> None:
    with NoOpTracer().start_as_current_span("attempt", context=continued(carried)):
        expected = current_traceparent()
    with _off().start_as_current_span("attempt", context=continued(carried)) as span:
        assert current_traceparent() == expected
        assert not span.is_recording()
    assert current_traceparent() == ""  # the context is given back on the way out
    if carried == PARENT:
        assert expected == PARENT  # the calls made inside the attempt carry the task's trace


def test_off_a_span_without_a_context_leaves_the_current_one_as_it_is() -> None:
    off = _off()
    with off.start_as_current_span("attempt", context=continued(PARENT)):
        with off.start_as_current_span("reserve", kind=SpanKind.CLIENT) as span:
            span.set_attribute("task_id", "t-1")  # a no-op, as on a non-recording span
            assert current_traceparent() == PARENT
        assert current_traceparent() == PARENT


def test_on_spans_are_opentelemetrys_with_their_parents_kinds_and_attributes() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    on = Tracer("test", provider=lambda: provider)
    with (
        on.start_as_current_span("attempt", context=continued(PARENT), attributes={"a": 1}),
        on.start_as_current_span("reserve", kind=SpanKind.CLIENT) as span,
    ):
        span.set_attribute("task_id", "t-1")
    reserve, attempt = exported.get_finished_spans()
    assert (attempt.name, reserve.name) == ("attempt", "reserve")
    assert attempt.parent is not None and f"{attempt.parent.trace_id:032x}" in PARENT
    assert reserve.parent is not None and reserve.parent.span_id == attempt.context.span_id
    assert reserve.kind is SpanKind.CLIENT
    assert dict(attempt.attributes or {}) == {"a": 1}
    assert dict(reserve.attributes or {}) == {"task_id": "t-1"}


def test_a_provider_installed_after_the_first_span_is_used_once_installed_says_so() -> None:
    installed: list[trace.TracerProvider] = [trace.ProxyTracerProvider()]
    late = Tracer("test", provider=lambda: installed[0])
    with late.start_as_current_span("before") as span:
        assert not span.is_recording()
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    installed[0] = provider
    with late.start_as_current_span("not yet looked for") as span:
        assert not span.is_recording()  # found off: not looked for at every span
    tracing.installed()  # what setup_tracing says once it installed one
    with late.start_as_current_span("after") as span:
        assert span.is_recording()
    assert [s.name for s in exported.get_finished_spans()] == ["after"]
