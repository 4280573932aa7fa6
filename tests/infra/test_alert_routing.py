"""Alerts that reach people: per stack, every catalogue alert routed through the Alertmanager
config the plan deploys by the real `amtool config routes test`, and every inhibit rule checked
against those routes."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contracts.config import load_from_mapping
from contracts.telemetry.alerts import EMERGENCY_ALERT, AlertRule, build_catalogue
from infra.plan.document import Plan
from infra.platform.alert_thresholds import alert_thresholds
from tests.infra.alert_facts import (
    PEOPLE,
    RoutedAlert,
    alertmanager_file,
    matches,
    result_labels,
    route,
    sample_labels,
    tool,
)
from tests.managed import ManagedProcess
from tests.servers import free_port
from tests.stacks import STACKS, stack_values
from tests.waiting import eventually

# An always-firing heartbeat may go nowhere by design; the catalogue has none today.
WATCHDOGS: frozenset[str] = frozenset({"Watchdog"})


def _catalogue(stack: str) -> list[AlertRule]:
    cfg = load_from_mapping(stack_values(stack))
    return [rule for group in build_catalogue(alert_thresholds(cfg)) for rule in group.rules]


def _people(config: dict[str, Any]) -> set[str]:
    return {r["name"] for r in config["receivers"] if PEOPLE & r.keys()}


def _routing(plan: Plan, stack: str, directory: Path) -> tuple[dict[str, Any], list[RoutedAlert]]:
    path, config = alertmanager_file(plan, directory)
    return config, [route(path, rule) for rule in _catalogue(stack)]


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_reaches_a_person(plans: dict[str, Plan], stack: str, tmp_path: Path) -> None:
    config, routed = _routing(plans[stack], stack, tmp_path)
    people = _people(config)
    table = "\n".join(f"{r.alert} ({r.severity}) → {', '.join(r.receivers)}" for r in routed)
    lost = [r.alert for r in routed if r.alert not in WATCHDOGS and not people & set(r.receivers)]
    assert not lost, f"{stack}: alerts reaching nobody:\n{table}"
    for r in routed:
        assert "null" not in r.receivers, f"{stack}: {r.alert} also routed to null"
    critical = [r for r in routed if r.severity == "critical"]
    assert critical
    if "pagerduty-critical" in people:
        assert all("pagerduty-critical" in r.receivers for r in critical), table
    emergency = next(r for r in routed if r.alert == EMERGENCY_ALERT)
    assert "agent-manager" in emergency.receivers  # the manager's emergency loop stays
    assert people & set(emergency.receivers)  # and a person hears of it too


@pytest.mark.parametrize("stack", STACKS)
def test_inhibition_never_hides_the_only_notice(
    plans: dict[str, Plan], stack: str, tmp_path: Path
) -> None:
    config, routed = _routing(plans[stack], stack, tmp_path)
    people = _people(config)
    rules = {rule.name: rule for rule in _catalogue(stack)}
    by_alert = {r.alert: r for r in routed}
    inhibits = config.get("inhibit_rules", [])
    assert inhibits, f"{stack}: no inhibit rule to check"
    for inhibit in inhibits:
        sources = [r for r in routed if matches(inhibit["source_matchers"], r.labels)]
        targets = [r for r in routed if matches(inhibit["target_matchers"], r.labels)]
        assert sources and targets, f"{stack}: inhibit rule matches no alert pair: {inhibit}"
        for source in sources:
            # The silencing alert itself reaches a person, or the problem is lost.
            assert people & set(by_alert[source.alert].receivers), (source, inhibit)
            for target in targets:
                assert source.alert != target.alert, inhibit
                # `equal` on labels one side lacks compares "" with "": any instance of the
                # source would silence every instance of the target, across problems.
                for side in (source.alert, target.alert):
                    carried = result_labels(rules[side])
                    assert carried is not None, side
                    assert set(inhibit["equal"]) <= carried, (side, inhibit["equal"], carried)


@contextmanager
def _alertmanager(config_file: Path, directory: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        "alertmanager",
        [
            tool("prometheus-alertmanager"),
            f"--config.file={config_file}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        directory / "alertmanager.log",
        ready=lambda: _status(f"{url}/-/ready") == 200,
    )
    try:
        process.start()
        yield url
    finally:
        process.stop()


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - 127.0.0.1
            return int(response.status)
    except OSError:
        return None


def _inhibited(alerts: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Alert name → the names of the alerts inhibiting it, from Alertmanager's API."""
    by_fingerprint = {a["fingerprint"]: a["labels"]["alertname"] for a in alerts}
    return {
        a["labels"]["alertname"]: [by_fingerprint[f] for f in a["status"]["inhibitedBy"]]
        for a in alerts
        if a["status"]["inhibitedBy"]
    }


@pytest.mark.parametrize("stack", STACKS)
def test_real_alertmanager_inhibits_only_superseded_alerts(
    plans: dict[str, Plan], stack: str, tmp_path: Path
) -> None:
    """Every catalogue alert fires at once, sharing label values, on a real Alertmanager with
    the stack's config: exactly the alerts a firing alert supersedes are inhibited, and each
    inhibiting alert itself reaches a person."""
    path, config = alertmanager_file(plans[stack], tmp_path)
    people = _people(config)
    rules = _catalogue(stack)
    expected = {target for rule in rules for target in rule.supersedes}
    with _alertmanager(path, tmp_path) as url:
        body = json.dumps([{"labels": sample_labels(rule)} for rule in rules]).encode()
        request = urllib.request.Request(  # noqa: S310 - 127.0.0.1
            f"{url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.status == 200

        def alerts() -> list[dict[str, Any]]:
            with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as got:  # noqa: S310
                found: list[dict[str, Any]] = json.loads(got.read())
            return found

        def settled() -> list[dict[str, Any]] | None:
            # The inhibitor caches firing sources from the alert stream, after the API took
            # them: an inhibition may show up a moment later, never one too many.
            found = alerts()
            if len(found) != len(rules):
                return None
            muted = set(_inhibited(found))
            assert muted <= expected, f"inhibited beyond what the catalogue supersedes: {muted}"
            return found if muted == expected else None

        received = eventually("every alert received, the superseded ones inhibited", settled)
    inhibited = _inhibited(received)
    assert set(inhibited) == expected, inhibited
    routed = {rule.name: route(path, rule) for rule in rules}
    for target, sources in inhibited.items():
        for source in sources:
            assert target in next(r for r in rules if r.name == source).supersedes
            assert people & set(routed[source].receivers), (source, routed[source])
