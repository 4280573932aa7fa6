"""Alerts that reach people: per stack, every catalogue alert routed through the Alertmanager
config the plan deploys by the real `amtool config routes test`, and every inhibit rule checked
against those routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.config import load_from_mapping
from infra.plan.document import Plan
from infra.platform.alert_thresholds import alert_thresholds
from runtime.telemetry.alerts import EMERGENCY_ALERT, AlertRule, build_catalogue
from tests.conftest import STACKS, stack_values
from tests.infra.alert_facts import (
    PEOPLE,
    RoutedAlert,
    alertmanager_file,
    matches,
    result_labels,
    route,
)

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
