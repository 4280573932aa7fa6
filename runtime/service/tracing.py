"""OpenTelemetry spans: off unless the settings name an exporter.

With no exporter the global no-op tracer stays in place, so spans in hot paths cost next to
nothing. The collector the monitoring layer deploys takes OTLP over HTTP.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from runtime.service.settings import ServiceSettings, TraceExporter

__all__ = ["setup_tracing", "tracer"]


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
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
