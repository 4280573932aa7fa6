"""`agentops doctor` as an operator runs it, against real servers: redis-server, the cost
engine, manager and worker processes, Prometheus scraping them, OpenBao. Healthy, then the
budget spent through the cost engine's API (critical, exit 1), then everything down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
import redis

from infra.plan.stackfile import load_stack_config
from ops.diagnostics import EXIT_CRITICAL, EXIT_OK
from tests.ops.diagnostics.prometheus import PrometheusServer, prometheus_server
from tests.ops.diagnostics.runtime import LocalRuntime, local_runtime
from tests.ops.diagnostics.windows import QUERY_WINDOW, REDIS_GROWTH_SAMPLE_S
from tests.servers import BaoServer, bao_server, free_port
from tests.stacks import write_stack
from tests.waiting import eventually

AGENTOPS = str(Path(sys.executable).parent / "agentops")
# A budget a few calls exhaust: gpt-4o input costs 2.50 USD per million tokens.
BUDGET = {"dailyUsd": "1", "monthlyUsd": "2"}


def _small_budget(config: dict[str, Any]) -> None:
    cost = config["agentops:cost"]
    cost["budget"] = BUDGET
    cost["rateLimits"]["overall"]["costUsd"] = "0.5"


@dataclass
class Platform:
    stack_dir: Path
    runtime: LocalRuntime
    prometheus: PrometheusServer
    vault: BaoServer
    vault_token: Path

    def options(self) -> list[str]:
        rt = self.runtime
        return [
            "--stack=local",
            f"--stack-dir={self.stack_dir}",
            "--no-kubernetes",
            f"--redis-url={rt.redis.url}",
            f"--prometheus-url={self.prometheus.url}",
            f"--vault-address={self.vault.address}",
            f"--vault-token-file={self.vault_token}",
            f"--cost-url={rt.cost.url}",
            f"--cost-token-file={rt.tokens.file('cost')}",
        ]


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTOPS_")}
    env["AGENTOPS_DOCTOR_QUERY_WINDOW"] = QUERY_WINDOW
    env["AGENTOPS_DOCTOR_REDIS_GROWTH_SAMPLE_S"] = str(REDIS_GROWTH_SAMPLE_S)
    return subprocess.run(
        [AGENTOPS, "doctor", *args], env=env, capture_output=True, text=True, check=False
    )


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    stack_dir = write_stack(tmp_path / "stack", "local", _small_budget)
    cfg = load_stack_config(stack_dir, "local")
    with (
        local_runtime(tmp_path / "runtime", cfg) as rt,
        prometheus_server(tmp_path / "prometheus", rt.scrape()) as prom,
        bao_server(tmp_path / "bao") as bao,
    ):
        # What the platform's Redis is configured with: room, and no eviction of tasks.
        client = redis.Redis.from_url(rt.redis.url)
        client.config_set("maxmemory", str(256 * 2**20))
        client.config_set("maxmemory-policy", "noeviction")
        root = hvac.Client(url=bao.address, token=bao.root_token)
        root.sys.enable_secrets_engine("kv", path=cfg.vault.kv_mount, options={"version": "2"})
        root.secrets.kv.v2.create_or_update_secret(
            "platform/redis", secret={"password": "p"}, mount_point=cfg.vault.kv_mount
        )
        token = tmp_path / "vault-token"
        token.write_text(bao.root_token + "\n")
        # Prometheus has scraped every target once: "up" is known, not pending.
        until_all_up(prom, len(rt.scrape()))
        yield Platform(stack_dir, rt, prom, bao, token)


def until_all_up(prom: PrometheusServer, count: int) -> None:
    def check() -> bool | None:
        targets = prom.targets()
        return True if len(targets) == count and all(t["health"] == "up" for t in targets) else None

    eventually("every target scraped", check)


def test_healthy_then_budget_spent_through_the_cost_engine(platform: Platform) -> None:
    healthy = doctor(*platform.options(), "--json")
    assert healthy.returncode == EXIT_OK, healthy.stdout + healthy.stderr
    report = json.loads(healthy.stdout)
    assert report["status"] == "healthy", statuses(report)
    assert report["recommendations"] == []
    assert report["not_checked"] == ["kubernetes (--no-kubernetes)"]
    names = statuses(report)
    for expected in (
        "redis.ping",
        "redis.memory",
        "redis.memory_days_left",
        "redis.eviction",
        "prometheus.targets",
        "prometheus.task_success_rate",
        "vault.seal",
        "vault.secret_age",
        "cost.month",
        "cost.day",
        "cost.projection",
        "cost.budget_config",
    ):
        assert names.get(expected) == "healthy", (expected, names)
    month = next(c for c in report["checks"] if c["name"] == "cost.month")
    assert month["value"] == 0 and "2.00 USD" in month["detail"]

    # 1M gpt-4o input tokens: 2.50 USD, over the 1 USD day and the 2 USD month.
    answer = platform.runtime.record_usage("doctor-over-budget", "gpt-4o", 1_000_000)
    assert answer["recorded"]
    over = doctor(*platform.options(), "--json")
    assert over.returncode == EXIT_CRITICAL
    report = json.loads(over.stdout)
    assert report["status"] == "critical"
    names = statuses(report)
    assert names["cost.month"] == "critical" and names["cost.day"] == "critical"
    month = next(c for c in report["checks"] if c["name"] == "cost.month")
    assert month["value"] == 1.25
    assert any(r.startswith("[critical] cost.month:") for r in report["recommendations"])

    table = doctor(*platform.options())
    assert table.returncode == EXIT_CRITICAL
    assert "cost.month" in table.stdout and "Recommendations" in table.stdout
    assert "[critical] cost.month:" in table.stdout  # printed as text, not rich markup
    assert "exit code: 1" in table.stdout


def test_every_dependency_down_is_critical_and_nothing_crashes(tmp_path: Path) -> None:
    stack_dir = write_stack(tmp_path / "stack", "local", lambda _: None)
    # A kubeconfig whose API server does not exist: the cluster check fails like the rest.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "gone", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "gone",
            }
        )
    )
    token = tmp_path / "token"
    token.write_text("unused\n")
    gone = doctor(
        "--stack=local",
        f"--stack-dir={stack_dir}",
        f"--kubeconfig={kubeconfig}",
        f"--redis-url=redis://127.0.0.1:{free_port()}/0",
        f"--prometheus-url=http://127.0.0.1:{free_port()}",
        f"--vault-address=http://127.0.0.1:{free_port()}",
        f"--vault-token-file={token}",
        f"--cost-url=http://127.0.0.1:{free_port()}",
        f"--cost-token-file={token}",
        "--json",
    )
    assert gone.returncode == EXIT_CRITICAL, gone.stderr
    assert "Traceback" not in gone.stderr
    report = json.loads(gone.stdout)
    assert statuses(report) == {
        "kubernetes.api": "critical",
        "redis.ping": "critical",
        "prometheus.ready": "critical",
        "vault.seal": "critical",
        "cost.report": "critical",
    }
    assert all("refused" in c["detail"].lower() for c in report["checks"]), report["checks"]
    assert len(report["recommendations"]) == 5


def test_a_bad_stack_is_a_usage_error(tmp_path: Path) -> None:
    result = doctor("--stack=nope", f"--stack-dir={tmp_path}", "--no-kubernetes")
    assert result.returncode == 2
    assert "no stack file" in result.stderr
