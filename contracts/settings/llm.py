"""The LLM handler's settings: `AGENTOPS_LLM_*` variables, set per llm pool by the Pulumi program
(provider base URL, model, key file) and read by runtime/worker/handlers/llm.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MAX_MODEL_CALLS", "MAX_TOOL_CALLS", "TOOL_SEPARATOR", "LLMSettings"]

# Between a server's name and its tool's in the names the model sees (<server>__<tool>).
TOOL_SEPARATOR = "__"
# Tool calls one task may make, at most; its model calls: one answer per allowed call and one
# more after a refusal of the last (the handler's loop), each reserved and recorded on its own.
MAX_TOOL_CALLS = 100
MAX_MODEL_CALLS = MAX_TOOL_CALLS + 2


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTOPS_LLM_", extra="ignore", frozen=True)

    base_url: AnyHttpUrl = Field(description="OpenAI-compatible API base, e.g. …/v1")
    api_key_file: Path | None = Field(default=None, description="file holding the API key")
    model: str | None = Field(
        default=None, max_length=100, description="model when no cost engine chooses one"
    )
    max_tokens: int = Field(default=1000, ge=1, le=200_000, description="answer length cap")
    temperature: float = Field(default=0.2, ge=0, le=2)
    system_prompt: str = Field(default="You are a helpful agent.", max_length=10_000)
    timeout_s: float = Field(default=120, gt=0, le=3600)
    max_attempts: int = Field(default=4, ge=1, le=20, description="calls per task attempt")
    backoff_s: float = Field(default=1.0, ge=0, le=60, description="first wait after a 5xx")
    max_retry_after_s: float = Field(default=60, ge=0, le=3600, description="longest wait")
    tool_servers: dict[str, AnyHttpUrl] = Field(
        default_factory=dict,
        description="MCP servers (streamable HTTP) this pool may use: name → URL (JSON)",
    )
    max_tool_calls: int = Field(
        default=8, ge=0, le=MAX_TOOL_CALLS, description="tool calls per task"
    )
    tool_timeout_s: float = Field(default=30, gt=0, le=600, description="per tool call")

    @field_validator("tool_servers")
    @classmethod
    def _server_names(cls, v: dict[str, AnyHttpUrl]) -> dict[str, AnyHttpUrl]:
        for name in v:
            if not name or TOOL_SEPARATOR in name:
                raise ValueError(
                    f"tool server name {name!r} must be non-empty without {TOOL_SEPARATOR!r}"
                )
        return v
