"""Vault's telemetry as Prometheus scrapes it, on a real OpenBao server: the program's
telemetry stanza, its `prometheus-metrics` policy and a token made like the plan's."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.telemetry import metrics as m
from infra.platform.metric_producers import (
    VAULT_METRICS_PATH,
    VAULT_METRICS_POLICY,
    VAULT_METRICS_POLICY_HCL,
    VAULT_TELEMETRY_HCL,
)
from tests.servers import BaoServer, bao_server, free_port


@dataclass(frozen=True)
class Scraped:
    server: BaoServer
    # A second listener configured like the deployed one: no unauthenticated metrics (dev
    # mode's own listener serves them to anyone).
    address: str


@pytest.fixture
def scraped(tmp_path: Path) -> Iterator[Scraped]:
    port = free_port()
    listener = f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
    with bao_server(tmp_path / "bao", extra_config=VAULT_TELEMETRY_HCL + listener) as bao:
        yield Scraped(bao, f"http://127.0.0.1:{port}")


def _get(scraped: Scraped, path: str, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"{scraped.address}{path}")  # noqa: S310 - 127.0.0.1
    if token is not None:
        request.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _token(server: BaoServer, *policies: str) -> str:
    args = [f"-policy={p}" for p in policies]
    proc = server.bao(
        "token", "create", "-no-default-policy", "-period=768h", *args, "-format=json"
    )
    assert proc.returncode == 0, proc.stderr
    token: str = json.loads(proc.stdout)["auth"]["client_token"]
    return token


def test_metrics_token_reads_vault_telemetry_and_nothing_else(scraped: Scraped) -> None:
    server = scraped.server
    path = server.directory / "metrics.hcl"
    path.write_text(VAULT_METRICS_POLICY_HCL)
    written = server.bao("policy", "write", VAULT_METRICS_POLICY, str(path))
    assert written.returncode == 0, written.stderr
    server.bao("secrets", "enable", "-path=agents", "kv-v2")
    server.bao("kv", "put", "-mount=agents", "platform/redis", "password=hunter2")
    token = _token(server, VAULT_METRICS_POLICY)
    scrape = f"{VAULT_METRICS_PATH}?format=prometheus"

    status, body = _get(scraped, scrape, token)
    assert status == 200, body
    samples = [line for line in body.splitlines() if line.startswith(m.VAULT_UNSEALED)]
    # The server's own series reads 1 (a stale cluster="" one may read 0: the alert takes max).
    assert samples and max(float(s.split()[-1]) for s in samples) == 1, samples

    # Nothing else: no secret, no other system path, and no scrape without the token.
    assert _get(scraped, "/v1/agents/data/platform/redis", token)[0] == 403
    assert _get(scraped, "/v1/sys/policies/acl", token)[0] == 403
    assert _get(scraped, scrape, None)[0] in (400, 403)  # 400 "missing client token"
    assert _get(scraped, scrape, _token(server, "default"))[0] == 403

    # Sealed, Vault refuses the token: the series vanish, which VaultSealed's absent() catches.
    assert server.bao("operator", "seal").returncode == 0
    assert _get(scraped, scrape, token)[0] == 503
