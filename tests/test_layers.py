"""Imports point one way (pyproject.toml `[tool.importlinter]`): `lint-imports` keeps the
contracts, and one injected `runtime → infra` import over a copy of the tree breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("contracts", "runtime", "infra", "policies", "ops")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy first on the path: the editable install must not answer for it.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True
    )


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tree / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_import_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_runtime_module_importing_infra_breaks_the_layers(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    engine = tree / "runtime" / "cost" / "engine.py"
    engine.write_text(engine.read_text() + "\nfrom infra.platform import workloads  # injected\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    assert "runtime is not allowed to import infra:" in result.stdout
    assert "runtime.cost.engine -> infra.platform.workloads" in result.stdout
    assert "Contracts: 2 kept, 1 broken." in result.stdout
