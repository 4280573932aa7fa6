"""The cost engine's settings (environment variables) and the stack cost config it enforces.

The Pulumi program passes the stack's `agentops:cost` config — the same `CostConfig` model the
stack file is validated with — as JSON in `AGENTOPS_COST_CONFIG`; a file path in
`AGENTOPS_COST_CONFIG_FILE` serves runs outside Kubernetes. One source of truth: budgets,
limits and overrides are never restated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from contracts import ports
from contracts.config.cost import CostConfig
from contracts.prices import PriceBook, PricedModel, PriceOverride
from contracts.settings.service import ServiceSettings

__all__ = ["CostEngineSettings", "price_book"]


class CostEngineSettings(ServiceSettings):
    port: int = Field(default=ports.COST_ENGINE_HTTP, ge=1, le=65535)
    api_token_file: Path = Field(
        description="file of bearer tokens (one a line) the API accepts, mounted from Vault"
    )
    cost_config: str | None = Field(
        default=None, description="the stack's cost config (CostConfig) as JSON"
    )
    cost_config_file: Path | None = Field(
        default=None, description="a file holding that JSON, instead of AGENTOPS_COST_CONFIG"
    )
    usage_max_age_seconds: int = Field(
        default=3600,
        ge=0,
        le=7 * 24 * 3600,
        description="how far before now a usage record's `at` may lie",
    )
    usage_max_ahead_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="how far a usage record's `at` may lie ahead of now (clock skew)",
    )
    metrics_refresh_seconds: float = Field(
        default=15, gt=0, le=300, description="how often spend gauges are re-read from Redis"
    )

    @model_validator(mode="after")
    def _one_cost_source(self) -> Self:
        if (self.cost_config is None) == (self.cost_config_file is None):
            raise ValueError(
                "set exactly one of AGENTOPS_COST_CONFIG and AGENTOPS_COST_CONFIG_FILE"
            )
        return self

    def cost(self) -> CostConfig:
        text = self.cost_config
        if self.cost_config_file is not None:
            text = self.cost_config_file.read_text()
        assert text is not None
        return CostConfig.model_validate_json(text)


def price_book(cost: CostConfig) -> PriceBook:
    """The prices of every configured model, overrides on top; refuses an unpriceable model."""
    return PriceBook(
        [PricedModel(name, profile.provider) for name, profile in cost.models.items()],
        [
            PriceOverride(o.model, o.input_per_1k_usd, o.output_per_1k_usd, o.effective_from)
            for o in cost.price_overrides
        ],
    )
