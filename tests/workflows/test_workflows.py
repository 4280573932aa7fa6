"""The GitHub workflows, their helper scripts and the runtime image, checked without GitHub.

- every workflow validates against the workflow JSON schema (check-jsonschema) and zizmor finds
  nothing of medium severity or above; both tools are shown to fail on a bad workflow, so
  neither check can pass vacuously;
- the structure the platform relies on: pinned actions, per-job permissions, no
  pull_request_target, the PR plan-diff of every stack on base and head posted through a marker,
  prod deployed after staging in the production environment, the image scanned and signed;
- .github/scripts/plan_diff.py end to end on real plans (a refused upgrade still yields the
  comment, then fails) and .github/scripts/runtime_image.py's config pins;
- runtime/Dockerfile's contract with the Deployments (uid, entrypoint, read-only root).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from infra.layers.agents import RUN_AS
from tests.stacks import REPO, stack_values

WORKFLOWS_DIR = REPO / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
SCRIPTS = REPO / ".github" / "scripts"
STACKS = ("staging", "prod", "local")
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>\s+#.*)?$")
BLOCKING_SEVERITIES = {"medium", "high"}


# ---------------------------------------------------------------------------------------------
# helpers


def _load_script(name: str) -> ModuleType:
    """Import one of .github/scripts/*.py (not a package) by path."""
    path = SCRIPTS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"gh_scripts_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


plan_diff = _load_script("plan_diff")
runtime_image = _load_script("runtime_image")


def _workflow(name: str) -> dict[str, Any]:
    body = yaml.safe_load((WORKFLOWS_DIR / name).read_text())
    assert isinstance(body, dict)
    return body


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict)
    return on


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def _uses(step: dict[str, Any]) -> str:
    return str(step.get("uses", "")).split("@", 1)[0]


def _step_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in _steps(job) if _uses(s) == action]


def _all_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for job_id, job in _workflow(path.name)["jobs"].items():
            yield path.name, job_id, job


def _zizmor_findings(tools: Path, target: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            str(tools / "zizmor"),
            "--offline",
            "--format",
            "json",
            "--no-progress",
            "--no-exit-codes",
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"zizmor itself failed:\n{proc.stderr}"
    findings = json.loads(proc.stdout)
    assert isinstance(findings, list)
    return findings


def _describe(finding: dict[str, Any]) -> str:
    where = []
    for loc in finding.get("locations", []):
        path = loc["symbolic"]["key"].get("Local", {}).get("given_path") or loc["symbolic"][
            "key"
        ].get("Local", {}).get("verbatim_path", "?")
        row = loc["concrete"]["location"]["start_point"]["row"] + 1
        where.append(f"{path}:{row}")
    severity = finding["determinations"]["severity"]
    return f"{finding['ident']} ({severity}) at {', '.join(where)}: {finding.get('desc', '')}"


def _blocking(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if f["determinations"]["severity"].lower() in BLOCKING_SEVERITIES]


# ---------------------------------------------------------------------------------------------
# the tools


@pytest.fixture(scope="module")
def tools() -> Path:
    """check-jsonschema and zizmor, pinned, from their own cached virtualenv."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "ensure-workflow-tools")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    bin_dir = Path(proc.stdout.strip().splitlines()[-1])
    for tool in ("check-jsonschema", "zizmor"):
        assert (bin_dir / tool).is_file(), f"{tool} missing in {bin_dir}"
    return bin_dir


def test_ensure_workflow_tools_is_idempotent_and_fast(tools: Path) -> None:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(REPO / "scripts" / "ensure-workflow-tools")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert time.perf_counter() - started < 10, "a second run must not reinstall"
    assert proc.stdout.strip().splitlines()[-1] == str(tools)
    assert "installing" not in proc.stderr


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "pr-preview.yml", "deploy.yml", "image.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_schema(tools: Path, workflow: Path) -> None:
    proc = subprocess.run(
        [
            str(tools / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tools: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    steps: not-a-list\n")
    proc = subprocess.run(
        [str(tools / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", broken],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0, proc.stdout


def test_dependabot_config_matches_the_schema(tools: Path) -> None:
    proc = subprocess.run(
        [
            str(tools / "check-jsonschema"),
            "--builtin-schema",
            "vendor.dependabot",
            str(REPO / ".github" / "dependabot.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_of_medium_severity_or_above(tools: Path) -> None:
    # .github: the workflows and dependabot.yml.
    findings = _blocking(_zizmor_findings(tools, REPO / ".github"))
    assert not findings, "zizmor findings:\n" + "\n".join(_describe(f) for f in findings)


def test_zizmor_reports_a_deliberately_bad_workflow(tools: Path, tmp_path: Path) -> None:
    """The check above is only worth something if the same call flags real problems."""
    bad_dir = tmp_path / ".github" / "workflows"
    bad_dir.mkdir(parents=True)
    (bad_dir / "bad.yml").write_text(
        textwrap.dedent(
            """\
            name: bad
            on: pull_request_target
            permissions: write-all
            jobs:
              greet:
                runs-on: ubuntu-24.04
                steps:
                  - uses: actions/checkout@v4
                    with:
                      ref: ${{ github.event.pull_request.head.sha }}
                  - run: echo "${{ github.event.pull_request.title }}"
            """
        )
    )
    findings = _blocking(_zizmor_findings(tools, bad_dir))
    idents = {f["ident"] for f in findings}
    assert {"template-injection", "dangerous-triggers"} <= idents, idents
    assert "unpinned-uses" in {f["ident"] for f in _zizmor_findings(tools, bad_dir)}


# ---------------------------------------------------------------------------------------------
# structure of every workflow


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(workflow: Path) -> None:
    lines = [m for line in workflow.read_text().splitlines() if (m := USES_LINE.match(line))]
    assert lines, f"{workflow.name} uses no action?"
    for match in lines:
        ref = match["ref"]
        assert SHA_PIN.match(ref), f"{workflow.name}: {ref} is not pinned to a full commit SHA"
        comment = match["comment"] or ""
        assert re.search(r"#\s*v\d+\.\d+\.\d+\b", comment), (
            f"{workflow.name}: {ref} needs a `# vX.Y.Z` comment naming the pinned release"
        )


def test_pins_agree_across_workflows() -> None:
    """One action, one pinned commit and version everywhere (what Dependabot bumps together)."""
    seen: dict[str, set[str]] = {}
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if match := USES_LINE.match(line):
                action, sha = match["ref"].split("@")
                seen.setdefault(action, set()).add(f"{sha} {(match['comment'] or '').strip()}")
    mixed = {action: pins for action, pins in seen.items() if len(pins) > 1}
    assert not mixed, mixed


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_top_level_permissions_grant_nothing_or_read(workflow: Path) -> None:
    permissions = _workflow(workflow.name).get("permissions")
    assert permissions in ({}, {"contents": "read"}), permissions


def test_every_job_declares_its_own_permissions() -> None:
    for name, job_id, job in _all_jobs():
        assert "permissions" in job, f"{name}: job {job_id} has no permissions block"
        permissions = job["permissions"]
        assert isinstance(permissions, dict), f"{name}: {job_id}: {permissions!r}"
        assert set(permissions.values()) <= {"read", "write", "none"}


def test_no_pull_request_target_or_workflow_run() -> None:
    for workflow in WORKFLOWS:
        triggers = _triggers(_workflow(workflow.name))
        assert "pull_request_target" not in triggers, workflow.name
        assert "workflow_run" not in triggers, workflow.name


def test_checkouts_keep_no_credentials() -> None:
    for name, job_id, job in _all_jobs():
        for step in _step_using(job, "actions/checkout"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{name}: {job_id}"


def test_no_expression_is_interpolated_into_a_script() -> None:
    """Values reach `run:` through `env:`; an expression there would be a shell injection."""
    for name, job_id, job in _all_jobs():
        for step in _steps(job):
            assert "${{" not in str(step.get("run", "")), f"{name}: {job_id}: {step.get('name')}"


def test_aws_access_is_oidc_role_assumption_only() -> None:
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for name, job_id, job in _all_jobs():
        for step in _step_using(job, "aws-actions/configure-aws-credentials"):
            assert step["with"]["role-to-assume"], f"{name}: {job_id}"
            assert job["permissions"].get("id-token") == "write", f"{name}: {job_id}"


# ---------------------------------------------------------------------------------------------
# ci.yml


def test_ci_runs_the_one_test_command() -> None:
    workflow = _workflow("ci.yml")
    assert {"pull_request", "push"} <= set(_triggers(workflow))
    runs = [s.get("run") for _, _, job in _jobs_of("ci.yml") for s in _steps(job)]
    assert "bash .ci/run" in runs


def _jobs_of(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, job_id, job) for job_id, job in _workflow(name)["jobs"].items()]


# ---------------------------------------------------------------------------------------------
# pr-preview.yml


def test_pr_preview_plans_every_stack_on_head_and_base() -> None:
    workflow = _workflow("pr-preview.yml")
    assert set(_triggers(workflow)) == {"pull_request"}
    job = workflow["jobs"]["plan-diff"]
    assert job["permissions"] == {"contents": "read"}, "the job running PR code writes nothing"
    script = "\n".join(str(s.get("run", "")) for s in _steps(job))
    assert "worktree add" in script and "HEAD^1" in script, "the base gets its own work tree"
    assert "plan_diff.py" in script
    for flag in ("--head", "--base", "--out"):
        assert flag in script
    stacks = re.search(r"--stacks ([\w ]+)", script)
    assert stacks is not None and stacks.group(1).split() == list(STACKS)
    assert tuple(plan_diff.STACKS) == STACKS
    upload = _step_using(job, "actions/upload-artifact")
    assert upload and "!cancelled()" in upload[0]["if"], "the comment survives a failed plan"
    fail = [s for s in _steps(job) if "steps.plan.outputs.failed" in str(s.get("if", ""))]
    assert fail and "exit 1" in fail[0]["run"], "the check fails after the comment is kept"


def test_pr_preview_posts_one_comment_found_by_its_marker() -> None:
    jobs = _workflow("pr-preview.yml")["jobs"]
    comment = jobs["comment"]
    assert comment["needs"] == "plan-diff"
    assert comment["permissions"] == {"pull-requests": "write"}
    assert "!cancelled()" in comment["if"], "a failed plan still posts its comment"
    assert not _step_using(comment, "actions/checkout"), "the posting job runs no PR code"
    script = _step_using(comment, "actions/github-script")[0]["with"]["script"]
    assert plan_diff.MARKER in script
    assert "updateComment" in script and "createComment" in script
    assert "listComments" in script


def test_pr_preview_runs_pulumi_preview_with_the_policy_pack_or_says_why_not() -> None:
    job = _workflow("pr-preview.yml")["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    assert "write" not in {v for k, v in job["permissions"].items() if k != "id-token"}
    gate = _steps(job)[0]
    assert "::notice" in gate["run"] and "AWS_ROLE_ARN" in gate["env"]
    assert "head.repo.full_name" in gate["env"]["HEAD_REPO"], "forks get no credentials"
    (pulumi,) = _step_using(job, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["diff"] is True
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    assert pulumi["with"]["comment-on-pr"] is False


# ---------------------------------------------------------------------------------------------
# deploy.yml


def test_deploy_rolls_out_staging_then_prod_behind_the_production_environment() -> None:
    workflow = _workflow("deploy.yml")
    assert _triggers(workflow)["push"] == {"branches": ["main"]}
    staging, prod = workflow["jobs"]["staging"], workflow["jobs"]["prod"]
    assert prod["needs"] == "staging" or prod["needs"] == ["staging"]
    assert prod["environment"] == "production"
    assert staging["environment"] == "staging"
    for env, job in (("staging", staging), ("prod", prod)):
        assert job["concurrency"]["cancel-in-progress"] is False
        (up,) = _step_using(job, "pulumi/actions")
        assert up["with"]["command"] == "up"
        assert up["with"]["stack-name"] == env
        assert up["with"]["policyPacks"] == "policies"
        assert up["with"]["policyPackConfigs"] == f"policies/config/{env}.json"
    groups = {staging["concurrency"]["group"], prod["concurrency"]["group"]}
    assert len(groups) == 2, "one concurrency group per environment"


# ---------------------------------------------------------------------------------------------
# image.yml


def test_image_is_scanned_before_push_then_signed_and_pinned_by_pull_request() -> None:
    workflow = _workflow("image.yml")
    triggers = _triggers(workflow)
    assert "workflow_dispatch" in triggers
    assert {"runtime/**", "contracts/**", "pyproject.toml"} <= set(triggers["push"]["paths"])
    publish = workflow["jobs"]["publish"]
    assert publish["permissions"]["id-token"] == "write", "cosign keyless and the AWS role"
    order = [_uses(s) or s.get("name", "") for s in _steps(publish)]
    scan = order.index("aquasecurity/trivy-action")
    builds = [i for i, u in enumerate(order) if u == "docker/build-push-action"]
    assert builds[0] < scan < builds[1], "build, scan, and only then push"
    (trivy,) = _step_using(publish, "aquasecurity/trivy-action")
    assert trivy["with"]["severity"] == "HIGH,CRITICAL" and trivy["with"]["exit-code"] == "1"
    push = _steps(publish)[builds[1]]
    assert push["with"]["push"] is True and push["with"]["file"] == "runtime/Dockerfile"
    sign = [s for s in _steps(publish) if "cosign sign" in str(s.get("run", ""))]
    assert sign and "DIGEST" in sign[0]["env"], "sign the pushed digest, not a tag"
    pin = [s for s in _steps(publish) if "runtime_image.py pin" in str(s.get("run", ""))]
    assert pin, "the digest is written into the stack config"
    pull_request = workflow["jobs"]["pull-request"]
    assert pull_request["needs"] == "publish"
    assert set(pull_request["permissions"]) == {"contents", "pull-requests"}


# ---------------------------------------------------------------------------------------------
# .github/scripts/plan_diff.py


def _fake_tree(root: Path, stack_file: str) -> Path:
    """A work tree whose scripts/dev plans with this repo's CLI from its own stack files."""
    (root / "scripts").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    (root / "Pulumi.staging.yaml").write_text(stack_file)
    dev = root / "scripts" / "dev"
    agentops = Path(sys.executable).parent / "agentops"
    dev.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\nshift\n"
        f'exec "{agentops}" plan "$@" --stack-dir "$(dirname "$0")/.."\n'
    )
    dev.chmod(0o755)
    return root


def _run_plan_diff(tmp_path: Path, base_file: str, head_file: str) -> tuple[Path, str]:
    base = _fake_tree(tmp_path / "base", base_file)
    head = _fake_tree(tmp_path / "head", head_file)
    out, github_output = tmp_path / "out", tmp_path / "github_output"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "plan_diff.py"),
            "--head",
            str(head),
            "--base",
            str(base),
            "--out",
            str(out),
            "--stacks",
            "staging",
            "--agentops",
            str(Path(sys.executable).parent / "agentops"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")},
            "GITHUB_OUTPUT": str(github_output),
        },
    )
    assert proc.returncode == 0, "the comment is written whatever the plans say\n" + proc.stderr
    return out, github_output.read_text()


@pytest.mark.slow
def test_plan_diff_comments_a_refused_upgrade_then_fails(tmp_path: Path) -> None:
    staging = (REPO / "Pulumi.staging.yaml").read_text()
    assert 'kubernetesVersion: "1.33"' in staging
    out, outputs = _run_plan_diff(
        tmp_path, staging, staging.replace('kubernetesVersion: "1.33"', 'kubernetesVersion: "1.35"')
    )
    comment = (out / "comment.md").read_text()
    assert comment.startswith(plan_diff.MARKER)
    assert "Kubernetes version change refused" in comment
    assert "**This check fails:**" in comment and "1.33 → 1.35" in comment
    assert "failed=true" in outputs.splitlines() and "comment=true" in outputs.splitlines()
    result = json.loads((out / "result.json").read_text())
    assert result["stacks"]["staging"]["diff"]["status"] == "refused"
    assert (out / "plans-base" / "staging" / "plan.json").is_file()
    assert (out / "plans-head" / "staging" / "plan.json").is_file()


@pytest.mark.slow
def test_plan_diff_comments_an_invalid_head_config_then_fails(tmp_path: Path) -> None:
    staging = (REPO / "Pulumi.staging.yaml").read_text()
    broken = staging.replace("maxSize: 6", "maxSize: 0")
    assert broken != staging
    out, outputs = _run_plan_diff(tmp_path, staging, broken)
    comment = (out / "comment.md").read_text()
    assert comment.startswith(plan_diff.MARKER)
    assert "invalid configuration" in comment and "maxSize" in comment
    assert "failed=true" in outputs.splitlines()


def _result(stack: str, head: str = "ok", diff: str = "no-changes", md: str = "") -> Any:
    run = plan_diff.PlanRun(status=head, returncode=0, resources=3, stderr="")
    base = plan_diff.PlanRun(status="ok", returncode=0, resources=3, stderr="")
    return plan_diff.StackResult(
        stack=stack, head=run, base=base, diff=plan_diff.DiffRun(diff, 0, md, "")
    )


def test_plan_diff_classifies_plan_outcomes(tmp_path: Path) -> None:
    assert plan_diff.classify_plan(2, tmp_path, "bad").status == "config"
    (tmp_path / "plan.json").write_text(json.dumps({"resources": [{}, {}]}))
    assert plan_diff.classify_plan(0, tmp_path, "").status == "ok"
    assert plan_diff.classify_plan(0, tmp_path, "").resources == 2
    # `agentops plan` may report a policy violation as 4 or as its generic 2: the written
    # plan tells them apart from a config error.
    assert plan_diff.classify_plan(4, tmp_path, "").status == "policy"
    assert plan_diff.classify_plan(2, tmp_path, "").status == "policy"
    counts = "**1 to add, 2 to change, 0 to remove**"
    assert plan_diff.classify_diff(0, counts, "").status == "changes"
    assert plan_diff.classify_diff(0, "No changes", "").status == "no-changes"
    assert plan_diff.classify_diff(3, counts, "").status == "refused"
    assert plan_diff.classify_diff(2, "", "boom").status == "error"


def test_plan_diff_comment_fails_on_policy_and_fits_githubs_limit() -> None:
    huge = "**0 to add, 1 to change, 0 to remove**\n" + "| x | y | z |\n" * 20_000
    results = [
        _result("staging", diff="changes", md=huge),
        _result("prod", head="policy"),
        _result("local"),
    ]
    comment, full = plan_diff.render(results, "`b`", "`h`", "https://example.invalid/run/1")
    assert comment.startswith(plan_diff.MARKER)
    assert len(comment) <= 65_536
    assert "mandatory policy violated" in comment and "**This check fails:**" in comment
    assert "`prod`: the head violates a mandatory policy" in comment
    assert "Too long for a comment" in comment and "run summary" in comment
    assert huge in full
    assert [r.failure is not None for r in results] == [False, True, False]


# ---------------------------------------------------------------------------------------------
# .github/scripts/runtime_image.py


def test_image_refs_cover_every_runtime_repository() -> None:
    urls = {
        name: f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/agentops/{name}"
        for name in runtime_image.RUNTIME_REPOSITORIES
    }
    refs = runtime_image.image_refs(urls, "0.1.0-abc-1.1")
    assert refs == [f"{urls[n]}:0.1.0-abc-1.1" for n in runtime_image.RUNTIME_REPOSITORIES]
    with pytest.raises(runtime_image.PinError):
        runtime_image.image_refs({**urls, "cost-engine": "evil.example.com/x"}, "t")
    with pytest.raises(runtime_image.PinError):
        runtime_image.image_refs(urls, "bad tag;rm")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_pins_reach_every_workload_of_the_stack(stack: str) -> None:
    agents = stack_values(stack)["agents"]
    digest = "sha256:" + "ab" * 32
    commands = runtime_image.pin_commands(stack, agents, "0.2.0-x", digest)
    keys = {c[-2]: c[-1] for c in commands}
    expected = ["manager", "costEngine", *(f"pools[{i}]" for i in range(len(agents["pools"])))]
    for path in expected:
        assert keys[f"agentops:agents.{path}.image.digest"] == digest
        assert keys[f"agentops:agents.{path}.image.tag"] == "0.2.0-x"
    assert all(c[:6] == ["pulumi", "config", "set", "--path", "--stack", stack] for c in commands)
    with pytest.raises(runtime_image.PinError):
        runtime_image.pin_commands(stack, agents, "0.2.0-x", "sha256:short")


def test_pin_reads_pulumi_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agents = stack_values("staging")["agents"]
    config = tmp_path / "config.json"
    # The shape of `pulumi config --json`: structured values as JSON text and objectValue.
    config.write_text(
        json.dumps({"agentops:agents": {"value": json.dumps(agents), "secret": False}})
    )
    digest = "sha256:" + "0" * 64
    argv = ["pin", "--stack", "staging", "--tag", "t1", "--digest", digest]
    assert runtime_image.main([*argv, "--config", str(config), "--dry-run"]) == 0
    printed = capsys.readouterr().err
    assert f"agentops:agents.manager.image.digest {digest}" in printed
    assert runtime_image.main([*argv[:-1], "nope", "--config", str(config), "--dry-run"]) == 2


# ---------------------------------------------------------------------------------------------
# runtime/Dockerfile and .dockerignore


def _dockerfile() -> list[str]:
    text = (REPO / "runtime" / "Dockerfile").read_text()
    # Join continuation lines, drop comments: one instruction per item.
    text = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_is_multi_stage_on_a_pinned_slim_bookworm_base() -> None:
    froms = [line for line in _dockerfile() if line.startswith("FROM ")]
    assert len(froms) == 2
    bases = {line.split()[1] for line in froms}
    assert len(bases) == 1, "both stages on the same base: the venv's interpreter must exist"
    (base,) = bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


def test_dockerfile_runs_as_the_deployments_user_with_the_cli_entrypoint() -> None:
    instructions = _dockerfile()
    runtime = instructions[[i for i, s in enumerate(instructions) if s.startswith("FROM ")][1] :]
    assert f"USER {RUN_AS}:{RUN_AS}" in runtime or f"USER {RUN_AS}" in runtime
    assert instructions[-2:] == ['ENTRYPOINT ["python", "-m", "runtime"]', 'CMD ["--help"]']
    env = " ".join(s for s in runtime if s.startswith("ENV "))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HOME=/tmp"):
        assert setting in env
    assert any("pip install --no-cache-dir ." in s for s in instructions)
    assert any(s.startswith("COPY --from=build /opt/agentops") for s in runtime)


def test_dockerignore_keeps_the_context_to_what_pip_builds() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    for needed in ("!pyproject.toml", "!contracts/", "!runtime/"):
        assert needed in lines
    # The image carries the runtime and its contracts only: not the Pulumi program, the
    # policy pack or the operator tooling.
    assert [line for line in lines if line.startswith("!")] == [
        "!pyproject.toml",
        "!contracts/",
        "!runtime/",
    ]
