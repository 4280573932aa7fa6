"""`agentops doctor`: checks a running platform against its stack and reports what it finds.

Layers: `check` (the result model), `thresholds` + `rules` (pure verdicts from measured
figures), `probes` (I/O per dependency), `platform` (what the stack expects), `doctor` (runs
the probes), `report` (recommendations, rendering), `cli` (the command). This package root
stays light (no infra or client libraries) because the CLI imports it at start.
"""

from ops.diagnostics.check import Check, Status, worst
from ops.diagnostics.report import (
    EXIT_CRITICAL,
    EXIT_OK,
    Report,
    build_report,
    recommendations,
    table,
)
from ops.diagnostics.settings import DoctorSettings

__all__ = [
    "EXIT_CRITICAL",
    "EXIT_OK",
    "Check",
    "DoctorSettings",
    "Report",
    "Status",
    "build_report",
    "recommendations",
    "table",
    "worst",
]
