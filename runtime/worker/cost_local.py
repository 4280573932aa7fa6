"""The worker's cost gate in-process: the cost package's engine on the queue's Redis.

The same operations as the cost engine's API (runtime.worker.cost_client), called directly:
the check-and-reserve and the usage record run the cost package's own scripts on its own keys
(`agentops:{cost}…`, runtime.cost.keys), so the budget state keeps one owner — the cost
package — and one format, whichever process runs the script. What changes is the transport:
no HTTP request, JSON body and response per reservation and per usage record. The cost
engine's API stays the interface for everything else (reports, other clients, release by
operators) and keeps sweeping lapsed reservations and refreshing the spend gauges.

Errors map exactly as the API client's do: a limit → retry after (RetryableError), an
exhausted budget, a model nobody prices or a call larger than a limit → TaskFailed, Redis
unavailable → DependencyUnavailable (the attempt does not count).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from redis.asyncio import Redis, RedisCluster

from contracts.config.cost import CostConfig
from contracts.prices import UnknownModelError
from contracts.settings.cost import price_book
from contracts.settings.worker import WorkerSettings
from runtime.cost.engine import CostEngine
from runtime.cost.limits import LimitTooSmall, RateLimited
from runtime.cost.metrics import CostMetrics
from runtime.cost.recommend import NoModelFits, Task
from runtime.cost.reservations import BudgetExceeded
from runtime.manager.queue import TaskRecord, TokenUsage
from runtime.service.redis import TRANSIENT_REDIS_ERRORS, Replication
from runtime.worker.handlers.base import DependencyUnavailable, RetryableError, TaskFailed
from runtime.worker.tools import ToolLimited

__all__ = ["LocalCost"]


class LocalCost:
    """The CostGate of runtime.worker.runner, in-process (settings.cost_config)."""

    def __init__(self, settings: WorkerSettings, redis: Redis, metrics: CostMetrics) -> None:
        assert settings.cost_config is not None
        cost = CostConfig.model_validate_json(settings.cost_config)
        self.settings = settings
        self.engine = CostEngine(
            redis, cost, metrics, book=price_book(cost), replication=Replication.of(settings)
        )

    async def choose_model(
        self, task: TaskRecord, requested: str | None, *, call: int = 1
    ) -> str | None:
        """The model the attempt's `call`-th model call may use, reserved against the budgets;
        None: no model."""
        s = self.settings
        input_tokens, output_tokens = s.max_input_tokens, s.max_output_tokens
        with _mapped():
            if requested is None:
                weights = self.engine.cost.recommendation
                answer = await self.engine.recommend(
                    Task(
                        task.request_type or task.agent_type,
                        task.complexity,
                        weights.quality_priority,
                        weights.speed_priority,
                    ),
                    task.team,
                )
                requested = answer.model
                # The estimate bounds the hold; the handler caps its output to the same figure.
                input_tokens = max(input_tokens, answer.chosen.input_tokens)
                output_tokens = max(output_tokens, answer.chosen.output_tokens)
            held = await self.engine.reserve(
                task.task_id,
                task.attempts,
                task.team,
                requested,
                input_tokens,
                output_tokens,
                call=call,
            )
        return held.model

    async def admit_tool_call(self, task: TaskRecord, server: str, tool: str) -> None:
        try:
            with _mapped():
                await self.engine.admit_tool_call(
                    task.team, f"{task.task_id}|{task.attempts}|{uuid.uuid4().hex}"
                )
        except RetryableError as err:
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
            with _mapped():
                await self.engine.record(
                    task.task_id,
                    attempt,
                    spent.model,
                    agent_type,
                    task.team,
                    spent.input_tokens,
                    spent.output_tokens,
                    call=call,
                )

    async def release(self, task: TaskRecord, attempt: int, call: int = 1) -> None:
        # Best effort: a hold nobody releases expires after the reservation timeout.
        with contextlib.suppress(*TRANSIENT_REDIS_ERRORS):
            await self.engine.release(task.task_id, attempt, call)

    def follows(self, redis: Redis) -> bool:
        """True on the worker's own client of one standalone Redis with no replica to wait
        for: records then go on its ordered script stream (runtime.service.redis.ordered).
        On a cluster `{cost}` and `{manager}` live apart, and with replicas each record is
        written and confirmed on its own."""
        return (
            redis is self.engine.redis
            and not isinstance(redis, RedisCluster)
            and self.engine.ledger.replication.replicas <= 0
        )

    async def aclose(self) -> None:
        return None  # the Redis connection is the worker's


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """The cost engine's refusals as the worker's outcomes (as the API client maps them)."""
    try:
        yield
    except RateLimited as err:
        raise RetryableError(f"cost engine rate limit: {err}", defer_s=err.retry_after_s) from None
    except BudgetExceeded as err:
        raise TaskFailed(f"budget exhausted: {err}") from None
    except (LimitTooSmall, UnknownModelError, NoModelFits) as err:
        raise TaskFailed(f"cost engine refused: {err}") from None
    except TRANSIENT_REDIS_ERRORS as err:
        raise DependencyUnavailable(f"cost state unreachable: {type(err).__name__}") from None
