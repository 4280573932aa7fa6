"""OpenTelemetry spans: off unless the settings name an exporter.

With no exporter no tracer provider is installed, and the tracers `tracer()` gives make no span
at all: OpenTelemetry's own no-op tracer still builds a span object and attaches a context per
span (about 7 µs each, 14 % of a worker's CPU on the hot path with four spans per task), these
only carry a caller's context on where a span names one, which is all the no-op spans did. The
collector the monitoring layer deploys takes OTLP over HTTP.

A task's trace crosses processes in W3C Trace Context (`traceparent`): HTTP calls carry it in
their headers (every service continues the caller's trace, see `caller_context`), and a
queued task carries it in its Redis hash from the manager's submit span to the worker's attempt.
Spans rooted in a service are sampled at `trace_sample_ratio`; a span with a parent follows the
parent's decision (the mesh's sampling at the gateway, the submit span's for a task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import Attributes

from contracts.settings.service import ServiceSettings, TraceExporter

__all__ = [
    "CARRIED_HEADERS",
    "TRACEPARENT",
    "Tracer",
    "caller_context",
    "continued",
    "current_traceparent",
    "installed",
    "propagation_headers",
    "setup_tracing",
    "tracer",
]

TRACEPARENT = "traceparent"


def setup_tracing(service: str, settings: ServiceSettings) -> TracerProvider | None:
    if settings.trace_exporter is TraceExporter.NONE:
        return None
    exporter: SpanExporter
    if settings.trace_exporter is TraceExporter.CONSOLE:
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if settings.otlp_endpoint is None:
            raise ValueError("AGENTOPS_OTLP_ENDPOINT is required when AGENTOPS_TRACE_EXPORTER=otlp")
        exporter = OTLPSpanExporter(endpoint=str(settings.otlp_endpoint))
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "deployment.environment": settings.environment}
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    installed()
    return provider


# Tracer providers installed in this process so far (`installed`): a tracer that found none
# looks again only when this changes, not at every span (OpenTelemetry's own lookup reads
# the environment each time while none is installed: 4.5 % of the manager's samples).
_installs = 0


def installed() -> None:
    """Note that a tracer provider was installed (setup_tracing does): every tracer that
    found none looks again at its next span."""
    global _installs
    _installs += 1


class Tracer:
    """`start_as_current_span` as OpenTelemetry's tracer has it, free while tracing is off.

    Off (no tracer provider installed, the global one is still OpenTelemetry's proxy): no span
    is made; a span started in a given `context` runs in that context, so a caller's trace
    still reaches the calls made inside it (the propagation headers carry it), as under
    OpenTelemetry's no-op tracer. On: the installed provider's tracer, looked up once. The
    provider is looked for at the first span and again after each `installed()`.
    """

    def __init__(
        self, name: str, provider: Callable[[], trace.TracerProvider] = trace.get_tracer_provider
    ) -> None:
        self.name = name
        self._provider = provider
        self._real: trace.Tracer | None = None
        self._off_since: int | None = None  # `_installs` when none was found

    def start_as_current_span(
        self,
        name: str,
        context: context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
    ) -> AbstractContextManager[Span]:
        real = self._real
        if real is None and self._off_since != _installs:
            real = self._installed()
        if real is not None:
            return real.start_as_current_span(
                name, context=context, kind=kind, attributes=attributes
            )
        return _OFF if context is None else _within(context)

    def _installed(self) -> trace.Tracer | None:
        """The installed provider's tracer (None: none is installed; asked again once
        `installed` says one was)."""
        provider = self._provider()
        if isinstance(provider, trace.ProxyTracerProvider):
            self._off_since = _installs
            return None
        self._real = provider.get_tracer(self.name)
        return self._real


_OFF: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)


@contextmanager
def _within(ctx: context.Context) -> Iterator[Span]:
    token = context.attach(ctx)
    try:
        yield trace.get_current_span(ctx)
    finally:
        context.detach(token)


def tracer(name: str) -> Tracer:
    return Tracer(name)


def propagation_headers() -> dict[str, str]:
    """Headers that carry the current span to the callee (empty outside any span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def current_traceparent() -> str:
    """The current span as a `traceparent` value, '' when there is none: what a queued task
    stores so the process that runs it continues its trace."""
    return propagation_headers().get(TRACEPARENT, "")


def continued(traceparent: str | None) -> context.Context:
    """The context whose spans are children of the span `traceparent` names (a fresh root
    when it is empty or malformed)."""
    return propagate.extract({TRACEPARENT: traceparent} if traceparent else {})


# The headers of the W3C trace context and baggage propagators (ASGI names are lower case).
CARRIED_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def caller_context(carried: Mapping[str, str]) -> context.Context:
    """The context a request runs in, so the service's spans are children of the caller's
    span (a worker's call, the mesh's gateway span): `carried` holds only the propagators'
    own headers, and a request without any (most, when the caller does not trace) starts
    from an empty context without the propagators' work."""
    return propagate.extract(carried) if carried else context.Context()
