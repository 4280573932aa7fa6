"""`agentops dev` on a stack whose config traces: the local processes are not pointed at the
in-cluster collector (no local process can reach it); the stack's sampling rate is kept."""

from __future__ import annotations

from pathlib import Path

from contracts.config import load_from_mapping
from infra.platform.tracing import tracing_on
from ops.devstack.layout import DevOptions, plan, process_names
from tests.stacks import stack_values


def test_local_processes_never_get_the_cluster_collector(tmp_path: Path) -> None:
    values = stack_values("local")
    values["monitoring"] |= {"enabled": True, "tracing": True, "traceSamplingPercent": 25}
    cfg = load_from_mapping(values)
    assert tracing_on(cfg)
    names = process_names(cfg, DevOptions())
    dev = plan(cfg, tmp_path, {n: 20000 + i for i, n in enumerate(names)}, "python", DevOptions())
    services = [p for p in dev.processes if p.role != "dependency"]
    assert services
    for process in services:
        assert "AGENTOPS_TRACE_EXPORTER" not in process.env, process.name
        assert "AGENTOPS_OTLP_ENDPOINT" not in process.env, process.name
        assert process.env["AGENTOPS_TRACE_SAMPLE_RATIO"] == "0.25", process.name
