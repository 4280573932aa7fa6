"""Istio mesh: zero-trust defaults, caller JWTs and blue/green traffic split."""

from __future__ import annotations

from typing import Self

from pydantic import AnyHttpUrl, Field, model_validator

from contracts.config.base import ConfigModel, RuleViolation
from contracts.config.quota import NamespaceQuotaConfig

__all__ = ["BlueGreenConfig", "JwtConfig", "MeshConfig"]


class JwtConfig(ConfigModel):
    issuer: str = Field(min_length=1, description="issuer (iss) of callers' JWTs")
    jwks_uri: AnyHttpUrl = Field(description="JWKS endpoint that signs callers' JWTs")
    audiences: list[str] = Field(default_factory=list, description="accepted aud values")


class BlueGreenConfig(ConfigModel):
    blue_weight: int = Field(default=100, ge=0, le=100, description="% of traffic to blue")
    green_weight: int = Field(default=0, ge=0, le=100, description="% of traffic to green")
    green_tag: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="manager image tag of the green track; required while greenWeight > 0",
    )
    green_digest: str | None = Field(
        default=None, pattern=r"^sha256:[0-9a-f]{64}$", description="digest of the green image"
    )

    @model_validator(mode="after")
    def _sum(self) -> Self:
        if self.blue_weight + self.green_weight != 100:
            raise RuleViolation(
                "greenWeight",
                self.green_weight,
                f"blueWeight + greenWeight must be 100 (blueWeight is {self.blue_weight})",
            )
        if self.green_weight > 0 and self.green_tag is None:
            raise RuleViolation(
                "greenTag", None, "traffic to green needs a green manager image (greenTag)"
            )
        return self


class MeshConfig(ConfigModel):
    enabled: bool = Field(default=True, description="install Istio and its policies")
    hosts: list[str] = Field(
        default_factory=lambda: ["*"], description="hosts the ingress gateway serves"
    )
    tls_secret: str = Field(
        default="agentops-ingress-tls",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description=(
            "kubernetes.io/tls Secret in istio-system with the gateway's certificate, issued "
            "by the operator's certificate manager (cert-manager, external-secrets)"
        ),
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
