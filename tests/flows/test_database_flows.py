"""The database's flows: exactly the pools `database.pools` lists, and Vault (which creates their
logins), reach PostgreSQL on 5432 — in the table and in the rendered NetworkPolicies, as the
independent analyzer (netpol-analyzer) reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import ports
from contracts.config import load_from_mapping
from contracts.config.errors import ConfigError
from infra.plan.connectivity import go_tool, netpol_analysis
from infra.platform.flows import flows
from infra.platform.names import Namespace
from tests.stacks import (
    LOCAL_DATABASE_POOLS,
    local_database,
    run_plan,
    stack_values,
    write_stack,
)

POSTGRES = ("TCP", ports.POSTGRES)


@pytest.fixture(scope="module")
def netpol() -> Path:
    return go_tool("netpol")


def test_only_the_listed_pools_and_vault_have_a_database_flow() -> None:
    values = stack_values("staging")
    cfg = load_from_mapping(values)
    into = {f.source.key for f in flows(cfg) if ports.POSTGRES in f.ports}
    assert into == {"agent-code-generator", "vault"}
    values["database"]["enabled"] = False
    assert not [f for f in flows(load_from_mapping(values)) if ports.POSTGRES in f.ports]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_analyzer_sees_only_the_listed_pools_and_vault_reach_5432(
    plan_dirs: dict[str, Path], netpol: Path, tmp_path: Path, stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    result = netpol_analysis(cfg, plan_dirs[stack] / "manifests", tmp_path, netpol)
    assert result.refused_flows == [] and result.unexpected == []
    reaching = {
        c.src
        for c in result.connections
        if (POSTGRES in c.ports or ("*", 0) in c.ports)
        and c.src.startswith(tuple(f"{ns.value}/" for ns in Namespace))
        and c.dst[0].isdigit()  # an address range: the VPC, where RDS is
    }
    vault_prefix = f"{Namespace.VAULT.value}/standin-vault-"
    vault = {s for s in reaching if s.removeprefix(vault_prefix).isdigit()}
    pools = reaching - vault
    assert vault, reaching
    for pool in (p.name for p in cfg.agents.pools):
        # The pool's pods: its Deployment, or a stand-in pod the analyzer input adds.
        name = f"agent-{pool}"
        named = {
            s
            for s in pools
            if s.split("/")[1].removeprefix("standin-").removeprefix(name).lstrip("-").isdigit()
            or s.split("/")[1] == name
        }
        assert bool(named) is (pool in cfg.database.pools), (pool, reaching)
        pools -= named
    assert pools == set(), f"nothing else of ours reaches 5432: {reaching}"


def test_an_unknown_pool_is_refused_naming_the_key() -> None:
    values = stack_values("staging")
    values["database"]["pools"] = ["code-generator", "nope"]
    with pytest.raises(ConfigError, match=r"agentops:database\.pools\[1\].*nope"):
        load_from_mapping(values)


def test_in_the_local_stack_only_the_listed_pools_and_vault_reach_the_server(
    netpol: Path, tmp_path: Path
) -> None:
    """The local stack's in-cluster server: the analyzer admits exactly the table's flows into
    its pod, from the pools `database.pools` lists and Vault, on 5432 only."""
    config = {f"agentops:{k}": v for k, v in stack_values("local").items()}
    local_database(config)
    config["agentops:database"]["pools"] = [LOCAL_DATABASE_POOLS[0]]  # one allowed, one not
    stack = write_stack(tmp_path / "stack", "local", lambda c: c.update(config))
    proc = run_plan("local", tmp_path / "plan", stack)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = load_from_mapping({k.split(":", 1)[1]: v for k, v in config.items()})
    result = netpol_analysis(cfg, tmp_path / "plan" / "manifests", tmp_path / "work", netpol)
    assert result.refused_flows == [] and result.unexpected == []
    # The server's pod as the analyzer reads it (a stand-in pod with the StatefulSet's labels).
    server = {f"{Namespace.PLATFORM.value}/{p}database" for p in ("", "standin-")}
    into = {c.src: c.ports for c in result.connections if c.dst.rstrip("-0123456789") in server}
    sources = {src.split("/")[1].removeprefix("standin-") for src in into}
    assert any(s.startswith(f"agent-{LOCAL_DATABASE_POOLS[0]}") for s in sources), into
    assert not any(s.startswith(f"agent-{LOCAL_DATABASE_POOLS[1]}") for s in sources), into
    assert any(s.startswith("vault") for s in sources), into
    assert all(s.startswith(("agent-", "vault")) for s in sources), into
    assert all(ports == {POSTGRES} for ports in into.values()), into
