"""The deployed engine gets the stack's cost config, unchanged, through its environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.config import load_from_mapping
from contracts.settings.cost import CostEngineSettings, price_book
from infra.plan.stackfile import read_stack_file
from infra.platform.names import COST_ENGINE
from infra.platform.workloads import runtime_workloads
from tests.stacks import REPO


@pytest.mark.parametrize("stack", ["staging", "prod", "local"])
def test_workload_env_carries_the_stack_cost_config(stack: str, tmp_path: Path) -> None:
    raw = read_stack_file(REPO, stack).config
    values = {}
    for key, value in raw.items():
        if key.startswith("agentops:"):
            try:
                values[key.split(":", 1)[1]] = json.loads(value)
            except json.JSONDecodeError:
                values[key.split(":", 1)[1]] = value
    cfg = load_from_mapping(values)
    engine = next(w for w in runtime_workloads(cfg) if w.name == COST_ENGINE)
    token = tmp_path / "token"
    token.write_text("x" * 32)
    settings = CostEngineSettings(
        api_token_file=token, cost_config=engine.env["AGENTOPS_COST_CONFIG"]
    )
    assert settings.cost() == cfg.cost
    assert settings.port == 8081
    price_book(settings.cost())  # every configured model resolves to a price


def test_exactly_one_cost_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of AGENTOPS_COST_CONFIG"):
        CostEngineSettings(api_token_file=tmp_path / "t")
    with pytest.raises(ValidationError, match="exactly one of AGENTOPS_COST_CONFIG"):
        CostEngineSettings(
            api_token_file=tmp_path / "t", cost_config="{}", cost_config_file=tmp_path / "c"
        )
