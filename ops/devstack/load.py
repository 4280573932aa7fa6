"""`agentops dev load`: submit a workload at a steady rate and report what came of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from contracts import endpoints

__all__ = ["LoadReport", "percentile", "run_load"]

_FINAL = {"succeeded", "failed", "dead_lettered"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty list."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class LoadReport:
    submitted: int
    refused: dict[int, int]  # HTTP status → count
    statuses: dict[str, int]
    latencies_s: list[float]  # submit → finish, per finished task
    elapsed_s: float
    spend_by_model: dict[str, Decimal] = field(default_factory=dict)
    # scope → what the cost engine's hourly window counted for this run (its /limits, after
    # minus before): calls, USD, holds still open
    limit_counted: dict[str, tuple[int, Decimal, int]] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(v for k, v in self.statuses.items() if k in _FINAL)

    @property
    def throughput(self) -> float:
        return self.finished / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def success_rate(self) -> float:
        return self.statuses.get("succeeded", 0) / self.finished if self.finished else 0.0


async def run_load(
    manager: str,
    token: str,
    agent_types: list[str],
    tasks: int,
    rate: float,
    *,
    payload: Callable[[int], Any] = lambda i: {"prompt": f"task {i}"},
    team: str = "default",
    progress: Callable[[str, int], None] | None = None,
    timeout_s: float = 600,
) -> LoadReport:
    """Submit `tasks` at `rate` per second round-robin over the agent types, then wait for
    every accepted task to finish (or the timeout)."""
    refused: dict[int, int] = {}
    ids: list[str] = []
    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=manager, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:

        async def submit(i: int) -> None:
            body = {
                "agent_type": agent_types[i % len(agent_types)],
                "payload": payload(i),
                "team": team,
            }
            response = await http.post(endpoints.TASKS_API, json=body)
            if response.status_code == 202:
                ids.append(response.json()["task_id"])
            else:
                refused[response.status_code] = refused.get(response.status_code, 0) + 1
            if progress:
                progress("submitted", 1)

        pending = []
        for i in range(tasks):
            # A steady rate, not a burst: each submit starts at its slot.
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(submit(i)))
        await asyncio.gather(*pending)

        records: dict[str, dict[str, Any]] = {}
        deadline = time.perf_counter() + timeout_s
        open_ids = list(ids)
        while open_ids and time.perf_counter() < deadline:
            answers = await asyncio.gather(
                *(http.get(f"{endpoints.TASKS_API}/{i}") for i in open_ids[:200])
            )
            for answer in answers:
                record = answer.json()
                if record["status"] in _FINAL:
                    records[record["task_id"]] = record
                    if progress:
                        progress("finished", 1)
            open_ids = [i for i in open_ids if i not in records]
            if open_ids:
                await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    latencies = []
    for record in records.values():
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        latencies.append(record["finished_at"] - record["submitted_at"])
    statuses["unfinished"] = len(open_ids)
    return LoadReport(len(ids), refused, statuses, latencies, elapsed)
