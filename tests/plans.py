"""Fixtures (a pytest plugin, tests/conftest.py): every stack planned once per session by the
real runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.plan.document import Plan
from tests.stacks import STACKS, run_plan


@pytest.fixture(scope="session")
def plan_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every stack planned once per test session by the real runner: its plan directory
    (`plan.json` and the rendered `manifests/`)."""
    root = tmp_path_factory.mktemp("plans")
    result = {}
    for stack in STACKS:
        proc = run_plan(stack, root / stack)
        assert proc.returncode == 0, proc.stderr
        result[stack] = root / stack
    return result


@pytest.fixture(scope="session")
def plans(plan_dirs: dict[str, Path]) -> dict[str, Plan]:
    """Every stack planned once per test session by the real runner."""
    return {stack: Plan.load(directory) for stack, directory in plan_dirs.items()}
