"""Traces by default: where the runtime sends its spans and how the mesh samples.

When the stack deploys the tracing pipeline (`monitoring.tracing`), every runtime Deployment
exports its spans over OTLP/HTTP to the OpenTelemetry collector, which forwards them to Jaeger
(infra/layers/monitoring.py), and an Istio Telemetry resource turns on the mesh's own spans at
`monitoring.traceSamplingPercent`. The runtime keeps the traces rooted in it at the same rate,
so an operator sets one figure. Without the pipeline (the local stack by default) nothing is
exported.
"""

from __future__ import annotations

from typing import Any, Final

from contracts.config import PlatformConfig
from contracts.settings.service import TraceExporter
from infra.platform.names import Namespace

__all__ = [
    "COLLECTOR_SERVICE",
    "MESH_TRACING_PROVIDER",
    "OTLP_HTTP",
    "TELEMETRY_NAME",
    "mesh_telemetry",
    "otlp_traces_endpoint",
    "trace_settings",
    "tracing_on",
]

# The collector chart's Service for the release "otel-collector" (release-chart fullname).
COLLECTOR_SERVICE: Final = "otel-collector-opentelemetry-collector"
OTLP_HTTP: Final = 4318
# The extension provider istiod's meshConfig declares for the collector (infra/layers/mesh.py).
MESH_TRACING_PROVIDER: Final = "otel"
TELEMETRY_NAME: Final = "mesh-default"


def tracing_on(cfg: PlatformConfig) -> bool:
    return cfg.monitoring.enabled and cfg.monitoring.tracing


def otlp_traces_endpoint() -> str:
    host = f"{COLLECTOR_SERVICE}.{Namespace.MONITORING.value}.svc.cluster.local"
    return f"http://{host}:{OTLP_HTTP}/v1/traces"


def trace_settings(cfg: PlatformConfig) -> dict[str, object]:
    """The ServiceSettings fields that make a service export its spans (none: tracing off)."""
    if not tracing_on(cfg):
        return {}
    return {
        "trace_exporter": TraceExporter.OTLP,
        "otlp_endpoint": otlp_traces_endpoint(),
        "trace_sample_ratio": cfg.monitoring.trace_sampling_percent / 100,
    }


def mesh_telemetry(cfg: PlatformConfig) -> dict[str, Any] | None:
    """The spec of the mesh-wide Telemetry resource (root namespace), None when tracing is off
    or there is no mesh."""
    if not (tracing_on(cfg) and cfg.mesh.enabled):
        return None
    return {
        "tracing": [
            {
                "providers": [{"name": MESH_TRACING_PROVIDER}],
                "randomSamplingPercentage": cfg.monitoring.trace_sampling_percent,
            }
        ]
    }
