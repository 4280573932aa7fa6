"""The worker's calls to the cost engine: which model a task may use, and what it spent.

Before a task runs: a recommendation (when the pool names no model) and a check-and-reserve of
the call's largest cost, which applies the budget downgrade and the hourly limits. After it
ran: the usage record (idempotency key = task id + attempt), which settles the reservation. A
task that spent nothing releases its hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import httpx

from contracts import endpoints
from contracts.settings.service import read_secret_file
from contracts.settings.worker import WorkerSettings
from runtime.manager.queue import TaskRecord, TokenUsage
from runtime.service.tracing import propagation_headers
from runtime.worker.handlers.base import DependencyUnavailable, RetryableError, TaskFailed
from runtime.worker.tools import ToolLimited

__all__ = ["CostClient", "single_model_usage"]


def single_model_usage(usage: Sequence[TokenUsage]) -> TokenUsage:
    """One attempt calls one model (its reservation's); its calls add up to one record."""
    models = {u.model for u in usage}
    if len(models) != 1:
        raise ValueError(f"one attempt must use one model, got {sorted(models)}")
    return TokenUsage(
        usage[0].model,
        sum(u.input_tokens for u in usage),
        sum(u.output_tokens for u in usage),
    )


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", "60")))
    except ValueError:
        return 60.0


class CostClient:
    def __init__(
        self, settings: WorkerSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        assert settings.cost_engine_url is not None
        self.settings = settings
        headers = {}
        if settings.cost_token_file is not None:
            token = read_secret_file(settings.cost_token_file, "AGENTOPS_COST_TOKEN_FILE")
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(
            base_url=str(settings.cost_engine_url).rstrip("/") + endpoints.COST_API,
            headers=headers,
            timeout=httpx.Timeout(10.0, connect=3.0),
            transport=transport,
        )

    async def _post(self, path: str, body: dict[str, object]) -> httpx.Response:
        try:
            response = await self.http.post(path, json=body, headers=propagation_headers())
        except httpx.HTTPError as err:
            raise DependencyUnavailable(f"cost engine unreachable: {type(err).__name__}") from None
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

    async def choose_model(self, task: TaskRecord, requested: str | None) -> str | None:
        """The model this attempt may call, reserved against the budgets; None: no model."""
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
        self, task: TaskRecord, attempt: int, agent_type: str, usage: tuple[TokenUsage, ...]
    ) -> None:
        spent = single_model_usage(usage)
        response = await self._post(
            "/usage",
            {
                "task_id": task.task_id,
                "attempt": attempt,
                "model": spent.model,
                "agent_type": agent_type,
                "team": task.team,
                "input_tokens": spent.input_tokens,
                "output_tokens": spent.output_tokens,
            },
        )
        response.raise_for_status()

    async def release(self, task: TaskRecord, attempt: int) -> None:
        # Best effort: a hold nobody releases expires after the reservation timeout.
        with contextlib.suppress(httpx.HTTPError):
            await self.http.delete(
                f"/reservations/{task.task_id}/{attempt}", headers=propagation_headers()
            )

    async def aclose(self) -> None:
        await self.http.aclose()
