"""Checkov, the third-party IaC scanner, over every stack's rendered Kubernetes manifests.

Checkov lives in a virtualenv of its own (scripts/ensure-checkov): its pins clash with
Pulumi's. Each stack is planned by the real runner, then scanned offline with the skip list of
policies/checkov-skips.yaml (nothing may fail) and once more without it (each skip must still be
needed). Prod is scanned with no skip at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stacks import REPO, STACKS, run_plan

ENSURE_CHECKOV = REPO / "scripts" / "ensure-checkov"
SKIPS_FILE = REPO / "policies" / "checkov-skips.yaml"
# The skips cover deliberate staging/local differences; prod must pass every check.
UNSKIPPED_STACKS = frozenset({"prod"})
# Far below today's counts (staging 366, prod 370, local 275), far above a scan that saw nothing.
MIN_PASSED = {"staging": 100, "prod": 100, "local": 50}
CHECK_ID = re.compile(r"^CKV2?_K8S_\d+$")
# Settings a developer's shell could carry into checkov (CKV_SKIP_CHECK, an API key, ...).
_CHECKOV_ENV_PREFIXES = ("CKV_", "CHECKOV_", "BC_", "PRISMA_")


@dataclass(frozen=True)
class Scan:
    passed: int
    failed: list[dict[str, Any]]
    resources: int

    def failed_ids(self) -> set[str]:
        return {f["check_id"] for f in self.failed}

    def describe_failures(self) -> str:
        return "\n".join(
            sorted(
                f"{f['check_id']} {f['resource']} {f['file_path'].lstrip('/')}: {f['check_name']}"
                for f in self.failed
            )
        )


@dataclass(frozen=True)
class StackScans:
    with_skips: Scan  # the skip list applied (for prod: none)
    without_skips: Scan


def load_skips() -> dict[str, Any]:
    body = yaml.safe_load(SKIPS_FILE.read_text())
    assert body is None or isinstance(body, dict), f"{SKIPS_FILE}: expected a mapping"
    return dict(body or {})


def scan(checkov: str, manifests: Path, skip: Sequence[str]) -> Scan:
    argv = [checkov, "--framework", "kubernetes", "--skip-download", "-d", str(manifests)]
    argv += ["-o", "json", "--compact", "--quiet"]
    if skip:
        argv += ["--skip-check", ",".join(skip)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CHECKOV_ENV_PREFIXES)}
    # cwd outside the repo: no stray .checkov.yaml changes what runs.
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=env, cwd=manifests.parent
    )
    # 0: nothing failed, 1: a check failed; anything else is checkov itself breaking.
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stderr}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one report per framework
        (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
    summary = report.get("summary", report)  # no resource at all: a bare summary
    failed = report.get("results", {}).get("failed_checks", [])
    assert summary["parsing_errors"] == 0, f"checkov could not parse {manifests}:\n{proc.stderr}"
    assert summary["failed"] == len(failed)
    return Scan(passed=summary["passed"], failed=failed, resources=summary["resource_count"])


def ensure_checkov() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENSURE_CHECKOV)], capture_output=True, text=True, check=False, timeout=900
    )


@pytest.fixture(scope="module")
def checkov() -> str:
    proc = ensure_checkov()
    assert proc.returncode == 0, f"scripts/ensure-checkov failed:\n{proc.stderr}"
    binary = proc.stdout.strip().splitlines()[-1]
    assert os.access(binary, os.X_OK), f"scripts/ensure-checkov printed {binary!r}"
    return binary


@pytest.fixture(scope="module")
def scans(checkov: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, StackScans]:
    """Every stack planned by the real runner and scanned with and without the skips."""
    root = tmp_path_factory.mktemp("checkov")
    skips = sorted(load_skips())
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        planned = pool.map(lambda stack: run_plan(stack, root / stack), STACKS)
        for stack, proc in zip(STACKS, planned, strict=True):
            assert proc.returncode == 0, f"planning {stack} failed:\n{proc.stderr}"
        jobs: dict[str, tuple[Future[Scan], Future[Scan]]] = {}
        for stack in STACKS:
            manifests = root / stack / "manifests"
            without = pool.submit(scan, checkov, manifests, [])
            with_ = (
                without
                if stack in UNSKIPPED_STACKS
                else pool.submit(scan, checkov, manifests, skips)
            )
            jobs[stack] = (with_, without)
        return {
            stack: StackScans(with_skips=w.result(), without_skips=wo.result())
            for stack, (w, wo) in jobs.items()
        }


def test_skip_list_names_checks_with_a_one_line_justification() -> None:
    skips = load_skips()
    for check_id, why in skips.items():
        assert CHECK_ID.match(str(check_id)), f"{check_id!r} is not a Kubernetes check id"
        assert isinstance(why, str) and why.strip(), f"{check_id} needs a justification"
        assert "\n" not in why.strip(), f"{check_id}: keep the justification to one line"


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_checkov_finds_nothing_in_the_manifests(scans: dict[str, StackScans], stack: str) -> None:
    result = scans[stack].with_skips
    skips = "none" if stack in UNSKIPPED_STACKS else ", ".join(sorted(load_skips())) or "none"
    assert not result.failed, (
        f"checkov: {len(result.failed)} failed check(s) in {stack} (skipped: {skips}); fix the "
        f"manifest, or justify a skip in {SKIPS_FILE.relative_to(REPO)}:\n"
        + result.describe_failures()
    )


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_checkov_really_checked_the_manifests(scans: dict[str, StackScans], stack: str) -> None:
    result = scans[stack].with_skips
    assert result.resources > 0, f"checkov saw no Kubernetes object in {stack}"
    assert result.passed >= MIN_PASSED[stack], (
        f"checkov passed only {result.passed} checks in {stack} (expected ≥ {MIN_PASSED[stack]})"
    )


@pytest.mark.slow
def test_every_skip_is_still_needed(scans: dict[str, StackScans]) -> None:
    """A skip whose check passes everywhere hides nothing: it has to go."""
    failing = {
        stack: s.without_skips.failed_ids()
        for stack, s in scans.items()
        if stack not in UNSKIPPED_STACKS
    }
    stale = [
        check_id for check_id in load_skips() if not any(check_id in f for f in failing.values())
    ]
    assert not stale, (
        f"skipped in {SKIPS_FILE.relative_to(REPO)} but failing in no stack: {', '.join(stale)}"
    )


@pytest.mark.slow
def test_skips_only_hide_their_own_checks(scans: dict[str, StackScans]) -> None:
    """Without the skips, the only extra failures are the skipped checks themselves."""
    skips = set(load_skips())
    for stack, s in scans.items():
        extra = s.without_skips.failed_ids() - s.with_skips.failed_ids()
        assert extra <= skips, f"{stack}: {sorted(extra - skips)} vanished with the skips"


@pytest.mark.slow
def test_ensure_checkov_is_a_no_op_the_second_time(checkov: str) -> None:
    proc = ensure_checkov()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == checkov
    assert "installing" not in proc.stderr, f"reinstalled checkov:\n{proc.stderr}"
