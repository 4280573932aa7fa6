"""A real Prometheus server (Debian's `prometheus`) for tests: a generated config scraping the
given targets every second, optional rule files, 127.0.0.1 on a free port, stopped by PID."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.managed import ManagedProcess, http_ok
from tests.servers import free_port

__all__ = ["PrometheusServer", "prometheus_server"]

SCRAPE_INTERVAL = "1s"


@dataclass
class PrometheusServer:
    port: int
    directory: Path
    handle: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.directory / "prometheus.yml"

    @property
    def log(self) -> Path:
        return self.directory / "prometheus.log"

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/targets", timeout=5).json()
        found: list[dict[str, Any]] = body["data"]["activeTargets"]
        return found

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.handle.popen is not None
        return self.handle.popen

    def stop(self) -> None:
        """SIGTERM by PID; SIGKILL after 20 s."""
        self.handle.stop()


def _config(
    scrape: Mapping[str, Sequence[str]],
    rules: Path | None,
    scrape_configs: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [{"targets": list(targets)}],
            }
            for job, targets in scrape.items()
        ]
        + [dict(c) for c in scrape_configs],
    }
    if rules is not None:
        config["rule_files"] = [str(rules)]
    return config


@contextmanager
def prometheus_server(
    directory: Path,
    scrape: Mapping[str, Sequence[str]],
    rule_groups: Mapping[str, Any] | None = None,
    scrape_configs: Sequence[Mapping[str, Any]] = (),
) -> Iterator[PrometheusServer]:
    """`scrape`: job name -> `host:port` targets (all on 127.0.0.1), scraped every second;
    `scrape_configs`: whole scrape configs besides (their own interval, path, scheme)."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: run scripts/ensure-apt"
    directory.mkdir(parents=True, exist_ok=True)
    rules = None
    if rule_groups is not None:
        rules = directory / "rules.yml"
        rules.write_text(yaml.safe_dump(dict(rule_groups), sort_keys=False))
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(scrape, rules, scrape_configs), sort_keys=False))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    handle = ManagedProcess(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        directory / "prometheus.log",
        cwd=directory,
        ready=lambda: http_ok(f"{url}/-/ready"),
        start_timeout=60,
        poll_interval=0.1,
        stop_grace=20,
    )
    server = PrometheusServer(port, directory, handle)
    try:
        handle.start()
        yield server
    finally:
        server.stop()
