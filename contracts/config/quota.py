"""Resource quota of a namespace whose workloads come from a third-party chart."""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from contracts.config.agents import cpu_millis, memory_bytes
from contracts.config.base import ConfigModel, RuleViolation

__all__ = ["NamespaceQuotaConfig"]


class NamespaceQuotaConfig(ConfigModel):
    cpu: str = Field(description="total CPU limit of the namespace, e.g. 8")
    memory: str = Field(description="total memory limit of the namespace, e.g. 16Gi")
    pods: int = Field(ge=1, le=10000, description="most pods in the namespace")

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: str) -> str:
        cpu_millis(v)
        return v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        memory_bytes(v)
        return v

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if cpu_millis(self.cpu) == 0:
            raise RuleViolation("cpu", self.cpu, "must be more than 0")
        return self
