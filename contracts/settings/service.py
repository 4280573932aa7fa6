"""The settings base every runtime service extends: environment variables, typed and checked.

Each service reads `AGENTOPS_*` variables through a subclass of `ServiceSettings`; the Pulumi
program sets the same names on the Deployments (infra/platform/workloads.py). Secrets are never
values here, only paths of files the platform mounts (a Vault-rendered file, a projected
Secret): a settings dump or an error can never leak them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

from pydantic import AnyUrl, Field, UrlConstraints, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SENTINEL_SCHEME", "RedisUrl", "ServiceSettings", "TraceExporter", "read_secret_file"]

# The in-cluster Redis runs replication with Sentinel: the services ask Sentinel for the
# current master (`redis+sentinel://<sentinel>:26379/<master set>/<db>`, as the state layer
# renders it) instead of a fixed address that a failover would leave pointing at a replica.
SENTINEL_SCHEME: Final = "redis+sentinel"
RedisUrl = Annotated[
    AnyUrl,
    UrlConstraints(
        allowed_schemes=["redis", "rediss", SENTINEL_SCHEME], host_required=True, default_port=6379
    ),
]


class TraceExporter(StrEnum):
    NONE = "none"
    CONSOLE = "console"
    OTLP = "otlp"


def read_secret_file(path: Path, what: str) -> str:
    """The stripped content of a mounted secret file; a clear error names the file, not it."""
    try:
        value = path.read_text().strip()
    except OSError as err:
        raise ValueError(f"{what}: cannot read {path}: {err.strerror}") from None
    if not value:
        raise ValueError(f"{what}: {path} is empty")
    return value


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTOPS_", extra="ignore", frozen=True, validate_default=True
    )

    environment: str = Field(
        default="local", pattern=r"^[a-z][a-z0-9-]{0,30}$", description="stack name"
    )
    host: str = Field(default="0.0.0.0", description="address to listen on")  # noqa: S104
    port: int = Field(ge=1, le=65535, description="port to listen on")
    redis_url: RedisUrl = Field(
        default=AnyUrl("redis://127.0.0.1:6379/0"),
        description=(
            "Redis URL without a password (the password comes from a file); "
            "redis+sentinel://HOST:PORT/MASTER-SET/DB asks Sentinel for the master"
        ),
    )
    redis_password_file: Path | None = Field(
        default=None, description="file holding the Redis password (rendered from Vault)"
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=16 * 1024 * 1024, description="largest request body"
    )
    header_timeout_s: float = Field(
        default=10,
        gt=0,
        le=300,
        description=(
            "a request's headers must arrive within this many seconds of the connection opening "
            "(or the previous response); otherwise 408 and the connection is closed"
        ),
    )
    body_timeout_s: float = Field(
        default=30,
        gt=0,
        le=600,
        description=(
            "a request's whole body must arrive within this many seconds of its headers; "
            "otherwise 408 and the connection is closed"
        ),
    )
    keep_alive_timeout_s: int = Field(
        default=5, gt=0, le=300, description="an idle keep-alive connection is closed after this"
    )
    max_connections: int = Field(
        default=1024,
        ge=2,
        le=65536,
        description=(
            "open connections per process; a request arriving while this many are open "
            "gets 503 (uvicorn's limit_concurrency)"
        ),
    )
    log_level: str = Field(
        default="info", pattern=r"^(debug|info|warning|error)$", description="log level"
    )
    trace_exporter: TraceExporter = Field(
        default=TraceExporter.NONE, description="OpenTelemetry span exporter (off by default)"
    )
    otlp_endpoint: AnyUrl | None = Field(
        default=None, description="OTLP/HTTP traces endpoint when traceExporter is otlp"
    )
    trace_sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=(
            "share of traces rooted in this service that are kept (a span with a parent, "
            "such as the mesh's or a task's, follows its parent's decision)"
        ),
    )

    @field_validator("redis_url")
    @classmethod
    def _no_password_in_url(cls, url: AnyUrl) -> AnyUrl:
        if url.password:
            raise ValueError(
                "must not carry a password: put it in the file named by "
                "AGENTOPS_REDIS_PASSWORD_FILE"
            )
        return url

    def redis_password(self) -> str | None:
        if self.redis_password_file is None:
            return None
        return read_secret_file(self.redis_password_file, "AGENTOPS_REDIS_PASSWORD_FILE")
