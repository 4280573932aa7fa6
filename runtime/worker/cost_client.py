"""The worker's calls to the cost engine: which model a task may use, and what it spent.

Before a task runs: a recommendation (when the pool names no model) and a check-and-reserve of
the call's largest cost, which applies the budget downgrade and the hourly limits; an LLM tool
loop reserves each further model call of the attempt the same way before making it. After it
ran: one usage record per model call (idempotency key = task id + attempt + call), which
settles that call's reservation. A reserved call that was never made releases its hold.

These calls are on every task's path, so the client is aiohttp with one keep-alive pool for the
worker's life (httpx spent more CPU per call than the cost engine did answering it; see
docs/benchmarks.md) and bodies encoded with orjson.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from contracts import endpoints
from contracts.settings.service import read_secret_file
from contracts.settings.worker import WorkerSettings
from runtime.manager.queue import TaskRecord, TokenUsage
from runtime.service.tracing import propagation_headers
from runtime.worker.handlers.base import DependencyUnavailable, RetryableError, TaskFailed
from runtime.worker.tools import ToolLimited

__all__ = ["CostClient"]


# Below the services' keep-alive timeout (AGENTOPS_KEEP_ALIVE_TIMEOUT_S, 5 s): the client drops
# an idle connection before the server does, so a request never lands on a closing one.
KEEP_ALIVE_S = 4.0
UNREACHABLE = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True)
class Answer:
    status_code: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def _retry_after(response: Answer) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", "60")))
    except ValueError:
        return 60.0


class CostClient:
    def __init__(self, settings: WorkerSettings) -> None:
        assert settings.cost_engine_url is not None
        self.settings = settings
        self.base = str(settings.cost_engine_url).rstrip("/") + endpoints.COST_API
        self.headers = {"Content-Type": "application/json"}
        if settings.cost_token_file is not None:
            token = read_secret_file(settings.cost_token_file, "AGENTOPS_COST_TOKEN_FILE")
            self.headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop that runs the worker.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=10.0, connect=3.0),
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEP_ALIVE_S),
            )
        return self._session

    async def _call(self, method: str, path: str, body: object = None) -> Answer:
        try:
            async with self._http().request(
                method,
                self.base + path,
                data=None if body is None else orjson.dumps(body),
                headers=propagation_headers(),
            ) as response:
                return Answer(response.status, response.headers, await response.read())
        except UNREACHABLE as err:
            raise DependencyUnavailable(f"cost engine unreachable: {type(err).__name__}") from None

    async def _post(self, path: str, body: dict[str, object]) -> Answer:
        response = await self._call("POST", path, body)
        if response.status_code == 429:
            raise RetryableError(
                f"cost engine rate limit: {response.json().get('detail')}",
                defer_s=_retry_after(response),
            )
        if response.status_code == 402:
            raise TaskFailed(f"budget exhausted: {response.json().get('detail')}")
        if response.status_code >= 500:
            raise DependencyUnavailable(f"cost engine answered {response.status_code}")
        if response.status_code >= 400:
            raise TaskFailed(f"cost engine refused {path}: {response.text[:300]}")
        return response

    async def choose_model(
        self, task: TaskRecord, requested: str | None, *, call: int = 1
    ) -> str | None:
        """The model the attempt's `call`-th model call may use, reserved against the budgets
        and hourly limits (a budget downgrade applied); None: no model."""
        input_tokens = self.settings.max_input_tokens
        output_tokens = self.settings.max_output_tokens
        if requested is None:
            answer = (
                await self._post(
                    "/recommendations",
                    {
                        "task_type": task.request_type or task.agent_type,
                        "complexity": task.complexity,
                        "team": task.team,
                    },
                )
            ).json()
            requested = str(answer["model"])
            # The estimate bounds the hold; the handler caps its output to the same figure.
            input_tokens = max(input_tokens, int(answer["input_tokens"]))
            output_tokens = max(output_tokens, int(answer["output_tokens"]))
        held = (
            await self._post(
                "/reservations",
                {
                    "task_id": task.task_id,
                    "attempt": task.attempts,
                    "call": call,
                    "team": task.team,
                    "agent_type": task.agent_type,
                    "model": requested,
                    "max_input_tokens": input_tokens,
                    "max_output_tokens": output_tokens,
                },
            )
        ).json()
        return str(held["model"])

    async def admit_tool_call(self, task: TaskRecord, server: str, tool: str) -> None:
        """Count a tool call against the team's hourly limit; ToolLimited when refused."""
        try:
            await self._post(
                "/tool-calls",
                {
                    "task_id": task.task_id,
                    "attempt": task.attempts,
                    "team": task.team,
                    "server": server,
                    "tool": tool,
                },
            )
        except RetryableError as err:
            if err.defer_s is None:
                raise
            raise ToolLimited(str(err)) from None

    async def record(
        self,
        task: TaskRecord,
        attempt: int,
        agent_type: str,
        usage: tuple[TokenUsage, ...],
        first: int = 1,
    ) -> None:
        """One record per model call (`usage[i]` is call i + 1), from call `first` on; each is
        idempotent, so a retried charge of the attempt counts none twice."""
        for call, spent in enumerate(usage[first - 1 :], first):
            await self._post(
                "/usage",
                {
                    "task_id": task.task_id,
                    "attempt": attempt,
                    "call": call,
                    "model": spent.model,
                    "agent_type": agent_type,
                    "team": task.team,
                    "input_tokens": spent.input_tokens,
                    "output_tokens": spent.output_tokens,
                },
            )

    async def release(self, task: TaskRecord, attempt: int, call: int = 1) -> None:
        # Best effort: a hold nobody releases expires after the reservation timeout.
        with contextlib.suppress(DependencyUnavailable):
            await self._call("DELETE", f"/reservations/{task.task_id}/{attempt}?call={call}")

    def follows(self, redis: Redis) -> bool:
        return False  # a record is an HTTP call to another process: it follows nothing

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
