"""docs/operations.md has a playbook for every alert every stack can fire: the doctor links a
firing alert to `docs/operations.md#<alert name in lower case>`."""

from __future__ import annotations

import re

import pytest

from contracts.config import load_from_mapping
from contracts.telemetry.alerts import alert_names, build_catalogue
from infra.platform.alert_thresholds import alert_thresholds
from ops.diagnostics.rules.prometheus import playbook_anchor
from tests.stacks import REPO, STACKS, stack_values

RUNBOOK = REPO / "docs" / "operations.md"


def _headings() -> set[str]:
    return set(re.findall(r"^### (\S+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE))


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_of_the_stack_has_a_playbook(stack: str) -> None:
    catalogue = build_catalogue(alert_thresholds(load_from_mapping(stack_values(stack))))
    missing = [name for name in alert_names(catalogue) if name not in _headings()]
    assert not missing, f"docs/operations.md has no '### <name>' section for {missing}"


def test_the_doctors_links_point_at_those_sections() -> None:
    # GitHub's anchor of "### RedisDown" is "#redisdown".
    assert playbook_anchor("RedisDown") == "docs/operations.md#redisdown"
    assert RUNBOOK.relative_to(REPO).as_posix() == playbook_anchor("X").split("#")[0]
