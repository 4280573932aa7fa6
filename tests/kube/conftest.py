"""The apply report: what each stack put on the API server, and what it could not."""

from __future__ import annotations

import pytest
from _pytest.terminal import TerminalReporter

from tests.kube.apply import REPORT


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT] = []


def pytest_terminal_summary(terminalreporter: TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(REPORT, [])
    if not lines:
        return
    terminalreporter.section("plans applied to a real Kubernetes control plane")
    for line in lines:
        terminalreporter.write_line(line)
    path = config.rootpath / ".pytest_cache" / "kube-apply-report.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    terminalreporter.write_line(f"(also in {path.relative_to(config.rootpath)})")
