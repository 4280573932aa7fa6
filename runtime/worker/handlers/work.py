"""A deterministic work handler for load tests and demos.

Each task sleeps a configured latency and fails at a configured rate. Whether a task fails is a
function of its id (and the seed), not of a random generator, so a run is reproducible and a
retried attempt of a failing task fails again. It reports token usage of a configured model,
sized from the payload, so spend flows through the cost engine as with a real model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.settings.worker import WorkerSettings
from contracts.units import Share
from runtime.manager.queue import TokenUsage
from runtime.worker.handlers.base import Handler, HandlerResult, TaskContext, TaskFailed

__all__ = ["WorkSettings", "build", "fails"]


class WorkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTOPS_WORK_", extra="ignore", frozen=True)

    latency_ms: float = Field(default=0, ge=0, le=600_000, description="time each task takes")
    failure_rate: Share = Field(default=0, description="share of tasks that fail")
    seed: str = Field(default="agentops", max_length=64)
    model: str | None = Field(
        default=None,
        max_length=100,
        description="model whose usage is reported when the cost engine chose none",
    )
    output_tokens: int = Field(default=200, ge=0, le=1_000_000)
    run_log: Path | None = Field(
        default=None,
        description=(
            "file to append '<task id> <attempt>' to each time a task's work completes: "
            "load and chaos tests count how often work really ran"
        ),
    )


def fails(task_id: str, seed: str, rate: float) -> bool:
    """Deterministic: the same task fails on every attempt, `rate` of all tasks fail."""
    digest = hashlib.sha256(f"{seed}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class WorkHandler:
    def __init__(self, settings: WorkSettings) -> None:
        self.settings = settings

    async def __call__(self, task: TaskContext) -> HandlerResult:
        s = self.settings
        # The payload may switch failure on for one task: {"fail": true}.
        forced = isinstance(task.payload, dict) and task.payload.get("fail") is True
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        if forced or fails(task.task_id, s.seed, s.failure_rate):
            raise TaskFailed("work handler: configured failure")
        usage: tuple[TokenUsage, ...] = ()
        model = task.model or s.model
        if model is not None:
            prompt = json.dumps(task.payload, sort_keys=True)
            # Roughly four characters a token, as providers' tokenizers average on English.
            usage = (TokenUsage(model, max(1, len(prompt) // 4), s.output_tokens),)
        if s.run_log is not None:
            _append(s.run_log, f"{task.task_id} {task.attempt}\n")
        return HandlerResult(output={"echo": task.payload, "attempt": task.attempt}, usage=usage)


def _append(path: Path, line: str) -> None:
    # One write of one line with O_APPEND: lines of concurrent workers never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def build(_: WorkerSettings) -> Handler:
    return WorkHandler(WorkSettings())
