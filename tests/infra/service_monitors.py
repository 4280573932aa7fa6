"""What prometheus-operator makes of a rendered ServiceMonitor, for tests: the Services it
selects (namespace, `matchLabels`, `matchExpressions`) and, per endpoint, the Prometheus scrape
config with the selected Service's port (by name), path, interval, scheme and TLS files.

The targets are the Service's port on 127.0.0.1, where a test runs the workload's real process:
in a cluster the operator lists the Service's endpoints instead; everything else is the
ServiceMonitor's own, never written by the test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["scrape_configs", "selected_services"]

# ServiceMonitor tlsConfig key → Prometheus tls_config key (the file-based ones).
_TLS_FILES = {
    "caFile": "ca_file",
    "certFile": "cert_file",
    "keyFile": "key_file",
    "insecureSkipVerify": "insecure_skip_verify",
}


def _matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = expression.get("values", [])
    return {
        "Exists": lambda: key in labels,
        "DoesNotExist": lambda: key not in labels,
        "In": lambda: labels.get(key) in values,
        "NotIn": lambda: labels.get(key) not in values,
    }[operator]()


def selected_services(
    monitor: Mapping[str, Any], services: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The Service manifests the monitor's spec selects, in the order given."""
    spec = monitor["spec"]
    namespaces = spec["namespaceSelector"]["matchNames"]
    selector = spec["selector"]
    found = []
    for svc in services:
        meta = svc["metadata"]
        labels = meta.get("labels", {})
        if meta["namespace"] not in namespaces:
            continue
        if not selector.get("matchLabels", {}).items() <= labels.items():
            continue
        if all(_matches(e, labels) for e in selector.get("matchExpressions", [])):
            found.append(svc)
    return found


def _port(service: Mapping[str, Any], name: str) -> int:
    (port,) = [p["port"] for p in service["spec"]["ports"] if p.get("name") == name]
    return int(port)


def _scrape_config(
    job: str, endpoint: Mapping[str, Any], services: list[Mapping[str, Any]]
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "job_name": job,
        "scrape_interval": endpoint["interval"],
        "metrics_path": endpoint.get("path", "/metrics"),
        "scheme": endpoint.get("scheme", "http"),
        "static_configs": [
            {
                "targets": [f"127.0.0.1:{_port(svc, endpoint['port'])}"],
                "labels": {
                    "namespace": svc["metadata"]["namespace"],
                    "service": svc["metadata"]["name"],
                },
            }
            for svc in services
        ],
    }
    tls = endpoint.get("tlsConfig", {})
    if tls:
        config["tls_config"] = {_TLS_FILES[k]: v for k, v in tls.items()}
    return config


def scrape_configs(
    monitors: Iterable[Mapping[str, Any]], services: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One scrape config per monitor endpoint, named as the operator names its jobs."""
    return [
        _scrape_config(
            f"serviceMonitor/{m['metadata']['namespace']}/{m['metadata']['name']}/{i}",
            endpoint,
            selected_services(m, services),
        )
        for m in monitors
        for i, endpoint in enumerate(m["spec"]["endpoints"])
    ]
