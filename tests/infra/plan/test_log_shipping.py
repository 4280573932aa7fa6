"""Logs leave the node on the AWS stacks: the plan of staging and prod (the real runner under the
mock engine, from the stack files) shows the two CloudWatch log groups with the config's
retention and their KMS key, the pinned Fluent Bit release, an IRSA policy that writes only those
two groups, and a Fluent Bit config that sends the runtime's audit events to the audit group.

No Fluent Bit binary is installable here (not in Debian's archive nor on PyPI), so the routing
is checked by our own reading of the rendered config: the rewrite_tag rule applied to lines the
runtime's real JSON formatter writes, then the outputs' Match patterns picked as Fluent Bit picks
them (fnmatch-style globs on the tag).
"""

from __future__ import annotations

import io
import json
import logging
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import versions
from contracts.config import load_from_mapping
from contracts.config.errors import ConfigError
from contracts.telemetry.logs import AuditEvent
from infra.plan.document import Plan, PlanResource
from infra.platform.logship import LOG_WRITES, log_group_names
from infra.platform.workloads import LOGS_EPHEMERAL_STORAGE
from runtime.service.logs import audit, json_formatter
from tests.stacks import REPO, helm_release, run_plan, stack_values, write_stack

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
AWS_STACKS = ("staging", "prod")


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    root = tmp_path_factory.mktemp("logs")
    out = {}
    for stack in AWS_STACKS:
        proc = run_plan(stack, root / stack)
        assert proc.returncode == 0, proc.stderr
        out[stack] = Plan.load(root / stack)
    return out


def _groups(plan: Plan) -> dict[str, PlanResource]:
    """The platform's log groups (the cluster and network layers keep their own as well)."""
    return {
        r.inputs["name"]: r
        for r in plan.resources
        if r.type == LOG_GROUP and r.inputs.get("name", "").startswith("/agentops/")
    }


def _sections(text: str) -> list[dict[str, str]]:
    """A classic-format Fluent Bit config as its sections' key/value pairs, in order."""
    found: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if re.fullmatch(r"\[[A-Z]+\]", line):
            found.append({"section": line[1:-1]})
        elif line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found[-1][key] = value.strip()
    return found


def _route(config: dict[str, str], record: dict[str, Any], tag: str) -> str:
    """The log group a merged record tagged `tag` reaches: rewrite_tag, then the output whose
    Match globs the (possibly new) tag. Exactly one output may take it."""
    for f in _sections(config["filters"]):
        if f["Name"] == "rewrite_tag" and fnmatchcase(tag, f["Match"]):
            field, regex, new_tag, keep = f["Rule"].split(" ")
            value = record.get(field.removeprefix("$"))
            if value is not None and re.search(regex, str(value)):
                assert keep == "false", "an audit event must not stay in the application stream"
                tag = new_tag.replace("$TAG", tag)
    outputs = [o for o in _sections(config["outputs"]) if fnmatchcase(tag, o["Match"])]
    assert len(outputs) == 1, (tag, outputs)
    assert outputs[0]["Name"] == "cloudwatch_logs"
    return outputs[0]["log_group_name"]


def _runtime_line(message: str, extra: dict[str, Any]) -> dict[str, Any]:
    """What the runtime's real formatter writes for a record, parsed as Merge_Log parses it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("tests.logship")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning(message, extra=extra)
    finally:
        logger.removeHandler(handler)
    parsed: dict[str, Any] = json.loads(stream.getvalue())
    return parsed


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_log_groups_have_the_configured_retention_and_a_rotating_key(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    values = stack_values(stack)
    names = log_group_names(values["cluster"]["name"])
    groups = _groups(plan)
    assert sorted(groups) == sorted(names.values())
    (key,) = [
        r
        for r in plan.resources
        if r.type == "aws:kms/key:Key" and "CloudWatch log groups" in r.inputs["description"]
    ]
    assert key.inputs["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    region = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"]["aws:region"]
    assert statements["CloudWatchLogsEncrypts"]["Principal"] == {
        "Service": f"logs.{region}.amazonaws.com"
    }
    retention = values["monitoring"]["logs"]["retentionDays"]
    for group in groups.values():
        assert group.inputs["retentionInDays"] == retention
        assert group.inputs["kmsKeyId"].startswith("arn:aws:kms:")


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_fluent_bit_is_pinned_with_its_writes_scoped_to_the_two_groups(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    release = helm_release(plan, "fluent-bit")
    chart = versions.CHARTS["fluent-bit"]
    assert (release.inputs["chart"], release.inputs["version"]) == (chart.name, chart.version)
    assert release.inputs["namespace"] == "kube-system"
    values = release.inputs["values"]
    assert values["kind"] == "DaemonSet"
    assert values["image"]["tag"] == versions.FLUENT_BIT_IMAGE
    for part in ("requests", "limits"):
        assert values["resources"][part]["ephemeral-storage"] == LOGS_EPHEMERAL_STORAGE
    role_arn = values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]

    (policy,) = [
        r
        for r in plan.resources
        if r.type == "aws:iam/rolePolicy:RolePolicy" and "fluent-bit" in r.name
    ]
    assert role_arn.endswith(f":role/{policy.inputs['role']}")
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert (
        sorted(statement["Action"])
        == sorted(LOG_WRITES)
        == [
            "logs:CreateLogStream",
            "logs:DescribeLogStreams",
            "logs:PutLogEvents",
        ]
    )
    names = sorted(_groups(plan))
    expected = []
    for name in names:
        expected += [f"log-group:{name}", f"log-group:{name}:log-stream:*"]
    assert sorted(r.split(":", 5)[5] for r in statement["Resource"]) == sorted(expected)
    assert all(":*:" not in r and r != "*" for r in statement["Resource"])

    (trust,) = [
        r for r in plan.resources if r.type == "aws:iam/role:Role" and "fluent-bit" in r.name
    ]
    conditions = json.loads(trust.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]
    assert "system:serviceaccount:kube-system:fluent-bit" in conditions["StringEquals"].values()


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_rendered_config_sends_audit_events_to_the_audit_group(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    config = helm_release(plan, "fluent-bit").inputs["values"]["config"]
    names = log_group_names(stack_values(stack)["cluster"]["name"])
    tag = "kube.var.log.containers.manager-0_agentops-platform_manager-abc.log"
    for event in AuditEvent:
        line = _runtime_line(f"{event} happened", audit(event, detail="x"))
        assert _route(config, line, tag) == names["audit"], event
    plain = _runtime_line("task done", {"task_id": "t-1", "trace_id": "ab" * 16})
    assert _route(config, plain, tag) == names["application"]
    # A line whose `audit` is not an audit event's name, and a non-JSON line, stay application.
    assert _route(config, {"audit": "yes please", "log": "x"}, tag) == names["application"]
    assert _route(config, {"log": "plain text"}, tag) == names["application"]
    # The tail input reads every container's log and the kubernetes filter merges its JSON.
    (tail,) = _sections(config["inputs"])
    assert tail["Name"] == "tail" and fnmatchcase(tag, tail["Tag"])
    kube = next(f for f in _sections(config["filters"]) if f["Name"] == "kubernetes")
    assert kube["Merge_Log"] == "On"


def test_local_stack_ships_no_logs_and_bad_retention_names_the_allowed_values(
    tmp_path: Path,
) -> None:
    local = stack_values("local")
    local["monitoring"]["logs"] = {"enabled": True}
    with pytest.raises(ConfigError, match=r"monitoring\.logs\.enabled.*no CloudWatch Logs"):
        load_from_mapping(local)

    prod = stack_values("prod")
    prod["monitoring"]["logs"]["retentionDays"] = 45
    with pytest.raises(ConfigError, match=r"retentionDays.*45.*1, 3, 5, 7, 14, 30, 60") as error:
        load_from_mapping(prod)
    assert "3653" in str(error.value)

    def bad(config: dict[str, Any]) -> None:
        config["agentops:monitoring"]["logs"]["retentionDays"] = 45

    proc = run_plan("prod", tmp_path / "plan", write_stack(tmp_path / "stack", "prod", bad))
    assert proc.returncode != 0
    assert "retentionDays" in proc.stderr and "3653" in proc.stderr
