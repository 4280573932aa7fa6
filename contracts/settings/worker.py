"""The agent worker's settings: `AGENTOPS_*` variables, set per pool by the Pulumi program."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import AnyHttpUrl, Field, FilePath, model_validator

from contracts import ports
from contracts.config.network import AWS_REGION
from contracts.config.storage import BUCKET_NAME_PATTERN
from contracts.settings.manager import AGENT_TYPE_PATTERN
from contracts.settings.retry import RetryBackoffSettings
from contracts.units import Share

__all__ = ["TOOL_SERVERS_ENV", "WorkerSettings"]

# The LLM handler's MCP servers (name → URL, JSON): its `tool_servers` setting
# (runtime/worker/handlers/llm.py), rendered per pool from `agents.toolServers`.
TOOL_SERVERS_ENV = "AGENTOPS_LLM_TOOL_SERVERS"


def _agent_id() -> str:
    # The pod name: unique, and the same after a container restart, so the agent's unfinished
    # inbox entries are its own again.
    return os.environ.get("POD_NAME") or socket.gethostname()


class WorkerSettings(RetryBackoffSettings):
    port: int = Field(default=ports.WORKER_HTTP, ge=1, le=65535, description="HTTP port")
    agent_type: str = Field(pattern=AGENT_TYPE_PATTERN, description="the pool's agent type")
    agent_id: str = Field(
        default_factory=_agent_id,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$",
        description="unique agent id (default: POD_NAME, then the host name)",
    )
    capacity: int = Field(default=4, ge=1, le=256, description="tasks run at once")
    weight: int = Field(default=1, ge=1, le=100, description="weighted round robin share")
    labels: dict[str, str] = Field(default_factory=dict, description="agent labels (JSON)")
    request_types: list[str] = Field(
        default_factory=list, description="request types it handles best (JSON list)"
    )
    max_complexity: Share = Field(default=1.0, description="hardest task (0..1) it is sized for")
    manager_url: AnyHttpUrl = Field(description="the agent manager's base URL")
    agent_token_file: Path = Field(description="bearer token for the manager's agent API")
    cost_engine_url: AnyHttpUrl | None = Field(
        default=None, description="the cost engine's base URL (none: usage is not recorded)"
    )
    cost_token_file: Path | None = Field(
        default=None, description="bearer token for the cost engine's API"
    )
    cost_config: str | None = Field(
        default=None,
        description=(
            "the cost engine's config (JSON, as its AGENTOPS_COST_CONFIG): set, the worker "
            "reserves and records usage in-process on its own Redis with the cost package's "
            "scripts instead of two HTTP calls per task (the cost state must live on the "
            "queue's Redis); excludes cost_engine_url"
        ),
    )
    model: str | None = Field(
        default=None, max_length=100, description="model the pool's tasks ask the cost engine for"
    )
    max_input_tokens: int = Field(
        default=4000, ge=1, le=2_000_000, description="largest prompt a task's reservation holds"
    )
    max_output_tokens: int = Field(
        default=1000, ge=1, le=2_000_000, description="largest answer a handler asks for"
    )
    handler: str = Field(
        default="runtime.worker.handlers.work:build",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="import path of the handler factory",
    )
    task_timeout_s: float = Field(default=300, gt=0, le=86_400, description="per task")
    heartbeat_interval_s: float = Field(default=5, gt=0, le=300)
    drain_timeout_s: float = Field(
        default=100,
        ge=0,
        le=3600,
        description="time in-flight tasks get after SIGTERM (< terminationGracePeriodSeconds)",
    )
    usage_record_attempts: int = Field(default=5, ge=1, le=50)
    storage_bucket: str | None = Field(
        default=None,
        pattern=BUCKET_NAME_PATTERN,
        description=(
            "the pool's own S3 bucket, reached with its IRSA role, KMS-encrypted by default "
            "(none: no agent storage)"
        ),
    )
    database_host: str | None = Field(
        default=None,
        max_length=253,
        description="the platform's PostgreSQL host (none: the pool uses no database)",
    )
    database_port: int = Field(default=ports.POSTGRES, ge=1, le=65535)
    database_name: str | None = Field(default=None, max_length=63, description="database name")
    database_credentials_path: str | None = Field(
        default=None,
        max_length=200,
        description="Vault path of the pool's dynamic database logins (database/creds/<role>)",
    )
    database_ssl: bool = Field(
        default=True, description="TLS to the database (off only for a local server)"
    )
    database_user: str | None = Field(
        default=None,
        max_length=63,
        description=(
            "a fixed login of the pool (`agentops dev` only; the cluster leases logins from "
            "Vault instead)"
        ),
    )
    database_password_file: Path | None = Field(
        default=None, description="file holding the password of `database_user`"
    )
    storage_region: str | None = Field(
        default=None,
        pattern=f"^{AWS_REGION}$",
        description="the bucket's region: the client calls <bucket>.s3.<region>.amazonaws.com",
    )
    storage_endpoint_url: AnyHttpUrl | None = Field(
        default=None,
        description=(
            "one endpoint for S3 (path-style) and STS instead of the bucket's regional hosts "
            "(a test's S3 server)"
        ),
    )
    storage_ca_file: FilePath | None = Field(
        default=None,
        description="CA bundle the S3 and STS endpoints are verified with (none: the system's)",
    )
    artifact_threshold_bytes: int = Field(
        default=64 * 1024,
        ge=1,
        le=100 * 1024 * 1024,
        description=(
            "a task output larger than this (as JSON) is stored in the bucket as an artifact "
            "and the result carries its key"
        ),
    )

    @model_validator(mode="after")
    def _one_cost_path(self) -> WorkerSettings:
        if self.cost_config is not None and self.cost_engine_url is not None:
            raise ValueError(
                "set at most one of AGENTOPS_COST_ENGINE_URL (the cost engine's API) and "
                "AGENTOPS_COST_CONFIG (in-process on the queue's Redis)"
            )
        fixed = (self.database_user, self.database_password_file)
        if (fixed[0] is None) != (fixed[1] is None):
            raise ValueError(
                "AGENTOPS_DATABASE_USER and AGENTOPS_DATABASE_PASSWORD_FILE go together"
            )
        if fixed[0] is not None and self.database_credentials_path is not None:
            raise ValueError(
                "set at most one of AGENTOPS_DATABASE_CREDENTIALS_PATH (Vault leases) and "
                "AGENTOPS_DATABASE_USER (a fixed login)"
            )
        return self

    @model_validator(mode="after")
    def _storage_region_with_bucket(self) -> WorkerSettings:
        if self.storage_bucket is not None and self.storage_region is None:
            raise ValueError(
                "AGENTOPS_STORAGE_REGION is required with AGENTOPS_STORAGE_BUCKET "
                "(the bucket's region, e.g. eu-west-1)"
            )
        endpoint = self.storage_endpoint_url
        if endpoint is not None and endpoint.scheme != "https":
            raise ValueError(
                f"AGENTOPS_STORAGE_ENDPOINT_URL must be https:// (got {endpoint.scheme}://): "
                "the pools' buckets refuse every request without TLS"
            )
        return self
