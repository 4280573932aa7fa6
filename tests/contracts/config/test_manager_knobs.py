"""The manager's knobs are declared once (ManagerSettings): the stack key takes the setting's
bounds and default, and the Deployment's variable carries the stack's value."""

from __future__ import annotations

import copy

import pytest

from contracts.config import ConfigError, load_from_mapping
from contracts.config.agents import MANAGER_KNOBS, ManagerConfig
from contracts.settings.environment import env_name
from contracts.settings.manager import ManagerSettings
from infra.platform.workloads import runtime_workloads
from tests.stacks import stack_values


@pytest.mark.parametrize(("knob", "setting"), sorted(MANAGER_KNOBS.items()))
def test_a_knob_has_its_settings_declaration(knob: str, setting: str) -> None:
    config, runtime = ManagerConfig.model_fields[knob], ManagerSettings.model_fields[setting]
    assert config.annotation == runtime.annotation
    assert config.default == runtime.default
    assert config.metadata == runtime.metadata
    assert config.description == runtime.description


def test_a_value_past_the_settings_bound_is_refused_naming_the_stack_key() -> None:
    values = copy.deepcopy(stack_values("staging"))
    values["agents"]["manager"]["heartbeatTtlSeconds"] = 601
    with pytest.raises(ConfigError, match=r"agentops:agents\.manager\.heartbeatTtlSeconds = 601"):
        load_from_mapping(values)


def test_every_knob_reaches_the_managers_environment() -> None:
    values = copy.deepcopy(stack_values("staging"))
    values["agents"]["manager"] |= {"taskRetentionSeconds": 3600, "deadLetterCap": 500}
    cfg = load_from_mapping(values)
    (manager, *_) = [w for w in runtime_workloads(cfg) if w.component == "manager"]
    settings = ManagerSettings.model_validate(
        {
            setting: manager.env[env_name(ManagerSettings, setting)]
            for setting in MANAGER_KNOBS.values()
        }
        | {
            "agent_types": ["x"],
            "api_token_file": "a",
            "agent_token_file": "b",
            "webhook_token_file": "c",
            "redis_url": "redis://r:6379/0",
        }
    )
    for knob, setting in MANAGER_KNOBS.items():
        assert getattr(settings, setting) == getattr(cfg.agents.manager, knob), knob
    assert (settings.task_retention_s, settings.dead_letter_cap) == (3600, 500)
