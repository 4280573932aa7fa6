"""Each llm pool reads its own provider key and nothing of another's, on a real OpenBao server:
the policies the vault layer writes (infra/platform/vault_access.py), and the template of the
injector annotation rendered by a real `bao agent` into a file that holds the key alone."""

from __future__ import annotations

import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.config import PlatformConfig, load_from_mapping
from infra.plan.istio_authz import Decision
from infra.platform.names import pool_workload
from infra.platform.runtime_secrets import PROVIDER_KEY_FILE
from infra.platform.vault_access import vault_identities
from infra.platform.workloads import provider_key_file
from tests.servers import BaoServer, bao_server
from tests.stacks import stack_values
from tests.vault_agent import render_once, token_for
from tests.vault_mesh import generated_mesh, recording_proxy, vault_decision

KEYS = {"code-generator": "sk-codegen-0f3a", "security-scanner": "sk-scanner-9b1c"}


@pytest.fixture(scope="module")
def prod() -> PlatformConfig:
    return load_from_mapping(stack_values("prod"))


@pytest.fixture
def vault(tmp_path: Path, prod: PlatformConfig) -> Iterator[BaoServer]:
    """OpenBao with prod's KV mount, both pools' keys (plus a second field each), and every
    runtime identity's policy as the plan writes it."""
    with bao_server(tmp_path / "bao") as server:
        mount = prod.vault.kv_mount
        assert server.bao("secrets", "enable", f"-path={mount}", "kv-v2").returncode == 0
        for pool in prod.agents.pools:
            assert pool.provider is not None
            key = pool.provider.key
            put = server.bao(
                "kv", "put", f"-mount={mount}", key.path, f"{key.field}={KEYS[pool.name]}", "org=x"
            )
            assert put.returncode == 0, put.stderr
        for identity in vault_identities(prod):
            path = server.directory / f"{identity.name}.hcl"
            path.write_text(identity.policy)
            written = server.bao("policy", "write", identity.name, str(path))
            assert written.returncode == 0, written.stderr
        yield server


def _read(server: BaoServer, token: str, mount: str, path: str) -> int:
    request = urllib.request.Request(f"{server.address}/v1/{mount}/data/{path}")  # noqa: S310
    request.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - 127.0.0.1
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_only_the_pool_reads_its_provider_key(vault: BaoServer, prod: PlatformConfig) -> None:
    mount = prod.vault.kv_mount
    keys = {p.provider.key.path: f"agent-{p.name}" for p in prod.agents.pools if p.provider}
    identities = [i.name for i in vault_identities(prod)]
    assert len(identities) == 4  # manager, cost engine, two pools
    seen = {}
    for identity in identities:
        token = token_for(vault, identity)
        for path, owner in keys.items():
            seen[(identity, path)] = _read(vault, token, mount, path)
            expected = 200 if identity == owner else 403
            assert seen[(identity, path)] == expected, (identity, path, seen[(identity, path)])
    assert sorted(seen.values()) == [200, 200] + [403] * 6


def test_agent_renders_the_key_alone_from_the_injector_template(
    vault: BaoServer, prod: PlatformConfig, tmp_path: Path
) -> None:
    for pool in prod.agents.pools:
        key_file = provider_key_file(pool)
        assert key_file is not None and key_file.name == PROVIDER_KEY_FILE
        template = key_file.template(prod.vault.kv_mount)
        own = token_for(vault, f"agent-{pool.name}")
        rendered = render_once(vault, own, template, tmp_path / pool.name / PROVIDER_KEY_FILE)
        assert rendered.read_text() == KEYS[pool.name]  # the key only: no other field, no newline
        assert stat.S_IMODE(os.stat(rendered).st_mode) == 0o400
    # With the other pool's policy the agent cannot render this pool's key.
    other = token_for(vault, "agent-security-scanner")
    first = provider_key_file(prod.agents.pools[0])
    assert first is not None
    with pytest.raises(RuntimeError, match="rendered nothing"):
        render_once(vault, other, first.template(prod.vault.kv_mount), tmp_path / "stolen" / "key")


def test_the_injected_agent_renders_through_the_meshs_vault_rules(
    vault: BaoServer, prod: PlatformConfig, tmp_path: Path
) -> None:
    # Issue 19: the real agent renders each pool's key through a proxy that refuses (403, as
    # Envoy does) whatever the prod mesh refuses that pool on Vault's API. The agent also asks
    # `sys/health` and `sys/internal/ui/mounts/<path>` (KV version detection); the mesh refuses
    # both like every sys/ path, and the agent renders all the same (it falls back to the
    # path as written: `<mount>/data/…`). Everything else it sends the mesh allows; the other
    # pool's identity is refused on its secret.
    mesh = generated_mesh(prod)
    pools = [pool_workload(p.name) for p in prod.agents.pools]
    for pool, other in zip(prod.agents.pools, [*pools[1:], pools[0]], strict=True):
        key_file = provider_key_file(pool)
        assert key_file is not None
        name = pool_workload(pool.name)

        def refused(method: str, path: str, name: str = name) -> bool:
            return vault_decision(prod, mesh, name, method, path) is not Decision.ALLOW

        with recording_proxy(vault.address, refused) as (address, seen):
            token = token_for(vault, name)
            template = key_file.template(prod.vault.kv_mount)
            rendered = render_once(vault, token, template, tmp_path / pool.name / "key", address)
            assert rendered.read_text() == KEYS[pool.name]
        assert seen, "the agent sent nothing through the proxy"
        own = {f"{m} {p}": vault_decision(prod, mesh, name, m, p) for m, p in seen}
        expected = {
            call: Decision.DENY if call.split()[1].startswith("/v1/sys/") else Decision.ALLOW
            for call in own
        }
        assert own == expected, pool.name
        assert "GET /v1/sys/health" in own  # what the agent asks, refused by the mesh
        assert pool.provider is not None
        read = f"GET /v1/{prod.vault.kv_mount}/data/{pool.provider.key.path}"
        assert own[read] is Decision.ALLOW
        assert vault_decision(prod, mesh, other, "GET", read.split()[1]) is Decision.DENY
