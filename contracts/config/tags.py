"""Tags every AWS resource carries: the cost and ownership facts finance reads."""

from __future__ import annotations

from pydantic import Field, field_validator

from contracts.config.base import ConfigModel

__all__ = ["TagsConfig"]

_RESERVED_PREFIX = "aws:"


class TagsConfig(ConfigModel):
    owner: str = Field(min_length=1, max_length=128, description="team that owns the stack")
    cost_centre: str = Field(
        min_length=1, max_length=128, description="cost centre charged for the stack"
    )
    extra: dict[str, str] = Field(
        default_factory=dict, description="further tags added to every AWS resource"
    )

    @field_validator("extra")
    @classmethod
    def _no_reserved(cls, extra: dict[str, str]) -> dict[str, str]:
        for key in extra:
            if key.lower().startswith(_RESERVED_PREFIX):
                raise ValueError(f"tag key {key!r} uses the reserved prefix 'aws:'")
            if key in {"environment", "owner", "cost-centre"}:
                raise ValueError(f"tag key {key!r} is set from the stack config already")
        return extra
