"""Istio mesh: zero-trust defaults, caller JWTs and blue/green traffic split."""

from __future__ import annotations

from typing import Self

from pydantic import AnyHttpUrl, Field, model_validator

from infra.config.base import ConfigModel, RuleViolation
from infra.config.quota import NamespaceQuotaConfig

__all__ = ["BlueGreenConfig", "JwtConfig", "MeshConfig"]


class JwtConfig(ConfigModel):
    issuer: str = Field(min_length=1, description="issuer (iss) of callers' JWTs")
    jwks_uri: AnyHttpUrl = Field(description="JWKS endpoint that signs callers' JWTs")
    audiences: list[str] = Field(default_factory=list, description="accepted aud values")


class BlueGreenConfig(ConfigModel):
    blue_weight: int = Field(default=100, ge=0, le=100, description="% of traffic to blue")
    green_weight: int = Field(default=0, ge=0, le=100, description="% of traffic to green")

    @model_validator(mode="after")
    def _sum(self) -> Self:
        if self.blue_weight + self.green_weight != 100:
            raise RuleViolation(
                "greenWeight",
                self.green_weight,
                f"blueWeight + greenWeight must be 100 (blueWeight is {self.blue_weight})",
            )
        return self


class MeshConfig(ConfigModel):
    enabled: bool = Field(default=True, description="install Istio and its policies")
    hosts: list[str] = Field(
        default_factory=lambda: ["*"], description="hosts the ingress gateway serves"
    )
    jwt: JwtConfig | None = Field(
        default=None, description="caller JWT validation on the task API (required in prod)"
    )
    blue_green: BlueGreenConfig = Field(
        default_factory=BlueGreenConfig, description="traffic split between blue and green"
    )
    namespace_quota: NamespaceQuotaConfig = Field(
        default_factory=lambda: NamespaceQuotaConfig(cpu="8", memory="16Gi", pods=40),
        description="quota of the mesh namespace (istiod, gateway, CNI)",
    )
