"""The settings base every runtime service extends: environment variables, typed and checked.

Each service reads `AGENTOPS_*` variables through a subclass of `ServiceSettings`; the Pulumi
program sets the same names on the Deployments (infra/platform/workloads.py). Secrets are never
values here, only paths of files the platform mounts (a Vault-rendered file, a projected
Secret): a settings dump or an error can never leak them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AnyUrl, Field, RedisDsn, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServiceSettings", "TraceExporter", "read_secret_file"]


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
    redis_url: RedisDsn = Field(
        default=RedisDsn("redis://127.0.0.1:6379/0"),
        description="Redis URL without a password (the password comes from a file)",
    )
    redis_password_file: Path | None = Field(
        default=None, description="file holding the Redis password (rendered from Vault)"
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=16 * 1024 * 1024, description="largest request body"
    )
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")
    trace_exporter: TraceExporter = Field(
        default=TraceExporter.NONE, description="OpenTelemetry span exporter (off by default)"
    )
    otlp_endpoint: AnyUrl | None = Field(
        default=None, description="OTLP/HTTP traces endpoint when traceExporter is otlp"
    )

    @field_validator("redis_url")
    @classmethod
    def _no_password_in_url(cls, url: RedisDsn) -> RedisDsn:
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
