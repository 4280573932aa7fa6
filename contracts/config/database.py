"""The optional PostgreSQL database of the platform: RDS in the AWS stacks, an in-cluster server
(a StatefulSet of the official image, contracts/versions.py) in the local stack.

Pools reach it with Vault dynamic credentials only: Vault's database secrets engine creates a
PostgreSQL login per lease, inside the pool's own role and schema, and drops it when the lease
ends. IAM database authentication is refused on purpose: an IAM token still logs in as a database
user someone must create and grant by hand, RDS limits IAM logins per second, and the local stack
has no IAM — with Vault the same credentials path serves every stack, and no two pools (nor two
pods) ever share a password.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Self

from pydantic import Field, model_validator

from contracts import versions
from contracts.config.base import ConfigModel, DnsLabel, RuleViolation

__all__ = ["CredentialsMode", "DatabaseConfig"]

# RDS limits for gp3 storage and automated backups.
MIN_STORAGE_GB: Final = 20
MAX_STORAGE_GB: Final = 65536
MAX_BACKUP_DAYS: Final = 35


class CredentialsMode(StrEnum):
    # Vault dynamic credentials: one login per lease, per pool, revoked when the lease ends.
    VAULT = "vault"


class DatabaseConfig(ConfigModel):
    enabled: bool = Field(
        default=False,
        description=(
            "one PostgreSQL for the platform: RDS in the AWS stacks, an in-cluster StatefulSet "
            "in the local stack"
        ),
    )
    engine_version: str = Field(
        default=versions.POSTGRES_ENGINE_VERSIONS[0],
        description=(
            "PostgreSQL engine version (RDS; the in-cluster image's tag), one of "
            f"{', '.join(versions.POSTGRES_ENGINE_VERSIONS)} (contracts/versions.py)"
        ),
    )
    instance_class: str = Field(
        default="db.t4g.medium",
        pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$",
        description="RDS instance class, e.g. db.t4g.medium, db.r7g.large (AWS stacks)",
    )
    storage_gb: int = Field(
        default=MIN_STORAGE_GB,
        ge=MIN_STORAGE_GB,
        le=MAX_STORAGE_GB,
        description=(
            f"allocated gp3 storage in GB ({MIN_STORAGE_GB}..{MAX_STORAGE_GB}); "
            "the local stack's volume claim in GiB"
        ),
    )
    multi_az: bool = Field(
        default=True,
        description="a synchronous standby in another AZ (required in prod; AWS stacks)",
    )
    backup_retention_days: int = Field(
        default=7,
        ge=1,
        le=MAX_BACKUP_DAYS,
        description=(
            f"days of automated backups and point-in-time recovery (1..{MAX_BACKUP_DAYS}; RDS only)"
        ),
    )
    name: str = Field(
        default="agents",
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="the database the pools' schemas live in",
    )
    pools: list[DnsLabel] = Field(
        default_factory=list,
        description="agent pools that may use the database (each gets its own role and schema)",
    )
    credentials: CredentialsMode = Field(
        default=CredentialsMode.VAULT,
        description=(
            "vault: dynamic credentials per lease from Vault's database secrets engine "
            "(IAM database authentication is refused: docs/architecture.md says why)"
        ),
    )
    credentials_ttl_s: int = Field(
        default=3600,
        ge=300,
        le=86400,
        description="lifetime of a pool's database login before Vault revokes it (seconds)",
    )

    @model_validator(mode="after")
    def _known_engine(self) -> Self:
        if self.engine_version not in versions.POSTGRES_ENGINE_VERSIONS:
            raise RuleViolation(
                "engineVersion",
                self.engine_version,
                f"pinned versions: {', '.join(versions.POSTGRES_ENGINE_VERSIONS)}",
            )
        if len(set(self.pools)) != len(self.pools):
            raise RuleViolation("pools", self.pools, "each pool once")
        return self
