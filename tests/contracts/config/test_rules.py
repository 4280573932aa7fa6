"""Every config rule rejects a bad value with a message naming the stack-file key."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from contracts.config import ConfigError, Environment, load_from_mapping
from contracts.config.loader import TOP_LEVEL_KEYS
from tests.stacks import STACKS, stack_values

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets a dotted path (list indexes as numbers) in the raw config."""

    def apply(raw: dict[str, Any]) -> None:
        parts = path.split(".")
        node: Any = raw
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        elif value is _DELETE:
            node.pop(last)
        else:
            node[last] = value

    return apply


_DELETE = object()


def _both(first: Mutation, second: Mutation) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        first(raw)
        second(raw)

    return apply


def _rejects(stack: str, mutate: Mutation) -> str:
    raw = copy.deepcopy(stack_values(stack))
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        load_from_mapping(raw)
    return str(info.value)


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stacks_are_valid(stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    assert cfg.environment is Environment(stack)


CASES: list[tuple[str, str, Mutation, str]] = [
    # (stack, key the message must name, mutation, words of the rule)
    ("staging", "agentops:network.vpcCidr", _set("network.vpcCidr", "10.0.0.0/12"), "/16../24"),
    (
        "staging",
        "agentops:network.availabilityZones",
        _set("network.availabilityZones", ["eu-west-1a", "eu-west-1a", "eu-west-1c"]),
        "repeat",
    ),
    (
        "staging",
        "agentops:network.publicSubnetCidrs",
        _set("network.publicSubnetCidrs", ["10.20.0.0/22"]),
        "one CIDR per availability zone",
    ),
    (
        "staging",
        "agentops:network.privateSubnetCidrs[1]",
        _set("network.privateSubnetCidrs.1", "10.99.0.0/19"),
        "inside vpcCidr",
    ),
    (
        "staging",
        "agentops:network.privateSubnetCidrs[0]",
        _set("network.privateSubnetCidrs.0", "10.20.0.0/19"),
        "overlaps",
    ),
    (
        "staging",
        "agentops:cluster.nodeGroups[1].maxSize",
        _set("cluster.nodeGroups.1.minSize", 7),
        "≥ minSize (7)",
    ),
    (
        "staging",
        "agentops:cluster.nodeGroups[0].desiredSize",
        _set("cluster.nodeGroups.0.desiredSize", 9),
        "between minSize",
    ),
    (
        "prod",
        "agentops:cluster.nodeGroups[2].amiType",
        _set("cluster.nodeGroups.2.amiType", "AL2023_x86_64_STANDARD"),
        "NVIDIA",
    ),
    (
        "staging",
        "agentops:cluster.endpoint.publicAccessCidrs",
        _set("cluster.endpoint.publicAccessCidrs", []),
        "allow-list",
    ),
    (
        "staging",
        "agentops:cluster.endpoint.publicAccessCidrs[0]",
        _set("cluster.endpoint.publicAccessCidrs", ["0.0.0.0/0"]),
        "everyone",
    ),
    (
        "staging",
        "agentops:cluster.kubernetesVersion",
        _set("cluster.kubernetesVersion", "1.29"),
        "supported minors: 1.32, 1.33, 1.34, 1.35",
    ),
    (
        "staging",
        "agentops:cluster.nodeGroups[1].name",
        _set("cluster.nodeGroups.1.name", "system"),
        "unique",
    ),
    (
        "staging",
        "agentops:cluster.nodeGroups",
        _set("cluster.nodeGroups.0.role", "agents"),
        "role 'system'",
    ),
    ("staging", "agentops:cluster.logTypes", _set("cluster.logTypes", ["api", "kernel"]), "kernel"),
    (
        "staging",
        "agentops:cluster.adminRoleArns",
        _set("cluster.adminRoleArns", ["arn:aws:iam::1:user/bob"]),
        "IAM role ARN",
    ),
    (
        "staging",
        "agentops:cluster.nodeGroups[0].instanceTypes",
        _set("cluster.nodeGroups.0.instanceTypes", ["huge"]),
        "instance type",
    ),
    (
        "staging",
        "agentops:agents.pools[0].maxReplicas",
        _set("agents.pools.0.maxReplicas", 0),
        "greater than or equal to 1",
    ),
    (
        "staging",
        "agentops:agents.pools[1].maxReplicas",
        _set("agents.pools.1.minReplicas", 3),
        "≥ minReplicas",
    ),
    (
        "staging",
        "agentops:agents.pools[0].resources.cpuLimit",
        _set("agents.pools.0.resources.cpuLimit", "100m"),
        "≥ cpuRequest",
    ),
    (
        "staging",
        "agentops:agents.pools[0].resources.memoryLimit",
        _set("agents.pools.0.resources.memoryLimit", "128Mi"),
        "≥ memoryRequest",
    ),
    (
        "staging",
        "agentops:agents.manager.resources.cpuRequest",
        _set("agents.manager.resources.cpuRequest", "lots"),
        "CPU quantity",
    ),
    (
        "staging",
        "agentops:agents.pools[1].image.repository",
        _set("agents.pools.1.image.repository", "elsewhere"),
        "cluster.ecrRepositories",
    ),
    (
        "staging",
        "agentops:agents.pools[1].name",
        _set("agents.pools.1.name", "code-generator"),
        "unique",
    ),
    (
        "staging",
        "agentops:agents.manager.image.digest",
        _set("agents.manager.image.digest", "sha256:abc"),
        "64",
    ),
    (
        "prod",
        "agentops:cluster.endpoint.publicAccess",
        _set("cluster.endpoint", {"publicAccess": True, "publicAccessCidrs": ["198.51.100.0/24"]}),
        "private endpoint only",
    ),
    (
        "prod",
        "agentops:network.availabilityZones",
        lambda raw: raw["network"].update(
            availabilityZones=["eu-west-1a", "eu-west-1b"],
            publicSubnetCidrs=raw["network"]["publicSubnetCidrs"][:2],
            privateSubnetCidrs=raw["network"]["privateSubnetCidrs"][:2],
        ),
        "at least 3",
    ),
    ("prod", "agentops:network.nat", _set("network.nat", "single"), "one NAT gateway per AZ"),
    ("prod", "agentops:vault.replicas", _set("vault.replicas", 1), "HA Vault"),
    ("prod", "agentops:vault.unseal", _set("vault.unseal", "shamir"), "auto-unseal"),
    (
        "prod",
        "agentops:agents.pools[0].image.tag",
        _set("agents.pools.0.image.tag", "latest"),
        "pins images",
    ),
    (
        "prod",
        "agentops:agents.costEngine.image.digest",
        _set("agents.costEngine.image.digest", _DELETE),
        "pinned by digest",
    ),
    (
        "prod",
        "agentops:mesh.blueGreen.greenDigest",
        _set("mesh.blueGreen", {"blueWeight": 100, "greenWeight": 0, "greenTag": "0.2.0"}),
        "pinned by digest",
    ),
    (
        "staging",
        "agentops:mesh.blueGreen.greenTag",
        _set("mesh.blueGreen", {"blueWeight": 50, "greenWeight": 50}),
        "greenTag",
    ),
    ("prod", "agentops:agents.manager.replicas", _set("agents.manager.replicas", 2), "at least 3"),
    (
        "prod",
        "agentops:agents.pools[1].minReplicas",
        _set("agents.pools.1.minReplicas", 1),
        "at least 2",
    ),
    ("prod", "agentops:mesh.jwt", _set("mesh.jwt", _DELETE), "JWT"),
    (
        "prod",
        "agentops:monitoring.alerting.pagerduty",
        _set("monitoring.alerting.pagerduty", _DELETE),
        "pages",
    ),
    (
        "staging",
        "agentops:monitoring.alerting",
        _set("monitoring.alerting.slack", _DELETE),
        "every alert must reach people",
    ),
    (
        "local",
        "agentops:monitoring.alerting",
        _set("monitoring.alerting", {"pagerduty": {"enabled": True}}),
        "slack or email",
    ),
    (
        "local",
        "agentops:cluster",
        lambda raw: raw.update(cluster=stack_values("staging")["cluster"]),
        "no AWS layer",
    ),
    ("local", "agentops:redis.mode", _set("redis.mode", "elasticache"), "no AWS"),
    (
        "prod",
        "agentops:redis.appendfsync",
        _set("redis.appendfsync", "no"),
        "prod fsyncs its AOF",
    ),
    (
        "staging",
        "agentops:redis.appendfsync",
        _set("redis.appendfsync", "sometimes"),
        "'always', 'everysec' or 'no'",
    ),
    ("local", "agentops:localCluster", _set("localCluster", _DELETE), "required"),
    ("local", "agentops:vault.unseal", _set("vault.unseal", "awskms"), "no AWS KMS"),
    (
        "local",
        "agentops:localCluster.kubernetesVersion",
        _set("localCluster.kubernetesVersion", "1.40"),
        "supported minors",
    ),
    ("staging", "agentops:network", _set("network", _DELETE), "required in the staging stack"),
    (
        "staging",
        "agentops:mesh.blueGreen.greenWeight",
        _set("mesh.blueGreen.greenWeight", 20),
        "must be 100",
    ),
    (
        "staging",
        "agentops:redis.elasticache.numCacheClusters",
        lambda raw: raw["redis"].update(mode="elasticache", elasticache={"numCacheClusters": 1}),
        "Multi-AZ",
    ),
    ("staging", "agentops:vault.replicas", _set("vault.replicas", 4), "odd"),
    (
        "staging",
        "agentops:cost.budget.monthlyUsd",
        _set("cost.budget.monthlyUsd", "100"),
        "≥ dailyUsd",
    ),
    (
        "staging",
        "agentops:cost.teamBudgets.research.monthlyUsd",
        _set("cost.teamBudgets.research.monthlyUsd", "10"),
        "≥ dailyUsd",
    ),
    (
        "staging",
        "agentops:cost.alertThresholds",
        _set("cost.alertThresholds", [0.9, 0.5]),
        "ascending",
    ),
    (
        "staging",
        "agentops:cost.downgrade.gpt-5",
        _set("cost.downgrade", {"gpt-5": "gpt-nano"}),
        "configured model",
    ),
    (
        "staging",
        "agentops:cost.priceOverrides[0].inputPer1kUsd",
        _set(
            "cost.priceOverrides",
            [
                {
                    "model": "m",
                    "inputPer1kUsd": "-1",
                    "outputPer1kUsd": "1",
                    "effectiveFrom": "2026-01-01",
                }
            ],
        ),
        "greater than or equal to 0",
    ),
    ("staging", "agentops:tags.extra", _set("tags.extra", {"aws:owner": "x"}), "reserved prefix"),
    ("staging", "agentops:cluster.nodeGroup", _set("cluster.nodeGroup", []), "not a known key"),
    (
        "staging",
        "agentops:monitoring.alerting.email.to[0]",
        _set(
            "monitoring.alerting.email",
            {"to": ["nobody"], "sender": "a@example.com", "smarthost": "smtp.example.com:25"},
        ),
        "e-mail address",
    ),
    ("staging", "agentops:environment", _set("environment", "qa"), "'staging', 'prod' or 'local'"),
    # The runtime's settings, as the program hands them to the Deployments.
    ("local", "agentops:vault.enabled", _set("vault.enabled", False), "reads its tokens"),
    (
        "staging",
        "agentops:agents.pools[1].model",
        _set("agents.pools.1.model", "no-such-model"),
        "a model the cost engine prices",
    ),
    (
        "staging",
        "agentops:agents.pools[1].requestTypes[0]",
        _both(
            _set("agents.pools.0.requestTypes", ["code-review"]),
            _set("agents.pools.1.requestTypes", ["code-review"]),
        ),
        "already routed to pool code-generator",
    ),
    (
        "staging",
        "agentops:agents.pools[0].handler",
        _set("agents.pools.0.handler", "not a path"),
        "should match pattern",
    ),
    (
        "staging",
        "agentops:agents.manager.visibilityTimeoutSeconds",
        _set("agents.manager.visibilityTimeoutSeconds", 10),
        "must be > heartbeatTtlSeconds",
    ),
    (
        "local",
        "agentops:storage.enabled",
        _set("storage", {"enabled": True, "bucketPrefix": "acme-agentops"}),
        "the local stack has no S3",
    ),
    (
        "prod",
        "agentops:storage.bucketPrefix",
        _set("storage.bucketPrefix", _DELETE),
        "required when storage is enabled",
    ),
    (
        "prod",
        "agentops:storage.bucketPrefix",
        _set("storage.bucketPrefix", "a-very-long-company-prefix-for-every-s3-bucket"),
        "S3 allows 63",
    ),
]


@pytest.mark.parametrize(
    ("stack", "key", "mutate", "rule"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES]
)
def test_rule_names_key(stack: str, key: str, mutate: Mutation, rule: str) -> None:
    message = _rejects(stack, mutate)
    assert f"{key} =" in message or f"{key} is" in message, message
    assert rule in message, message


def test_prod_fsyncs_every_write_unless_its_stack_says_otherwise() -> None:
    raw = copy.deepcopy(stack_values("prod"))
    assert "appendfsync" not in raw["redis"], "prod takes the default"
    assert load_from_mapping(raw).redis.appendfsync == "always"
    raw["redis"]["appendfsync"] = "everysec"  # a deliberate, visible choice is allowed
    assert load_from_mapping(raw).redis.appendfsync == "everysec"


def test_message_shows_value_and_rule() -> None:
    message = _rejects("prod", _set("cluster.nodeGroups.1.maxSize", 2))
    assert "agentops:cluster.nodeGroups[1].maxSize = 2: must be ≥ minSize (3)" in message


def test_every_top_level_key_is_documented_in_pulumi_yaml() -> None:
    import yaml

    from tests.stacks import REPO

    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    for key in TOP_LEVEL_KEYS:
        assert f"agentops:{key}" in declared, key
        assert declared[f"agentops:{key}"]["description"]


def test_docs_reference_matches_the_models() -> None:
    from contracts.config.reference import PAGE, PAGE_END, PAGE_START, render_reference
    from tests.stacks import REPO

    page = (REPO / PAGE).read_text()
    section = page[page.index(PAGE_START) + len(PAGE_START) : page.index(PAGE_END)]
    assert section == render_reference(), (
        f"{PAGE} is stale: run `python -m contracts.config.reference --write`"
    )


def test_every_config_field_is_described() -> None:
    from contracts.config.reference import render_reference

    for row in render_reference().splitlines()[2:]:
        cells = [c.strip() for c in row.split("|")]
        assert cells[4], f"{cells[1]} has no description"


def _override(model: str, per_1k_in: str, per_1k_out: str, since: str) -> dict[str, str]:
    return {
        "model": model,
        "inputPer1kUsd": per_1k_in,
        "outputPer1kUsd": per_1k_out,
        "effectiveFrom": since,
    }


@pytest.mark.parametrize("stack", STACKS)
def test_a_downgrade_that_costs_more_is_refused_with_both_prices(stack: str) -> None:
    # genai-prices: gpt-4o input costs twice gpt-5's, output the same.
    message = _rejects(stack, _set("cost.downgrade", {"gpt-5": "gpt-4o"}))
    assert "agentops:cost.downgrade.gpt-5 = 'gpt-4o'" in message
    assert (
        "gpt-4o costs 0.0025 / 0.01 USD per 1K input / output tokens, gpt-5 0.00125 / 0.01"
        in message
    )
    # A dated override that makes the target dearer from a later day is refused for that day.
    dearer_later = _set(
        "cost.priceOverrides", [_override("gpt-5-mini", "0.002", "0.02", "2099-01-01")]
    )
    message = _rejects(stack, dearer_later)
    assert "agentops:cost.downgrade.gpt-5 = 'gpt-5-mini'" in message
    assert "on 2099-01-01: gpt-5-mini costs 0.002 / 0.02" in message


def test_a_target_cheaper_for_every_token_estimate_is_accepted() -> None:
    raw = copy.deepcopy(stack_values("staging"))
    # Output dearer per token than gpt-5 (0.0102 > 0.01), but every task type's estimate is
    # cheaper: input saves more than output adds.
    _set("cost.priceOverrides", [_override("gpt-5-mini", "0.0001", "0.0102", "2020-01-01")])(raw)
    assert load_from_mapping(raw).cost.downgrade["gpt-5"] == "gpt-5-mini"
    # One task type with far more output than input tips it: refused, that type named.
    tokens = {"general": {"input": 300, "output": 800}, "summary": {"input": 10, "output": 5000}}
    _set("cost.recommendation.taskTokens", tokens)(raw)
    with pytest.raises(ConfigError, match="no less for the token estimate of summary"):
        load_from_mapping(raw)


def test_default_downgrades_all_save_money() -> None:
    from contracts.config.cost import CostConfig
    from contracts.settings.cost import price_book

    cost = CostConfig.model_validate({"budget": {"dailyUsd": "1", "monthlyUsd": "30"}})
    book = price_book(cost)
    assert cost.downgrade, "the defaults map at least one model"
    for source, target in cost.downgrade.items():
        for tokens in ((1000, 0), (0, 1000)):
            assert book.cost(target, *tokens) < book.cost(source, *tokens), (source, target)
