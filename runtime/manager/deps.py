"""What the manager's routes share, as `Annotated` dependencies: the state, the callers'
audiences (each with its own token file) and the error shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from contracts.settings.manager import ManagerSettings
from runtime.manager.dispatcher import Dispatcher
from runtime.manager.emergency import EmergencySwitch
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.queue import TaskQueue
from runtime.manager.registry import AgentRegistry
from runtime.service.auth import BearerAuth

__all__ = [
    "UNPROCESSABLE",
    "AgentCaller",
    "AlertmanagerCaller",
    "Callers",
    "ManagerState",
    "Reader",
    "State",
    "Submitter",
    "manager_state",
    "problem",
    "submitter",
]

UNPROCESSABLE = 422


@dataclass
class ManagerState:
    settings: ManagerSettings
    queue: TaskQueue
    registry: AgentRegistry
    dispatcher: Dispatcher
    emergency: EmergencySwitch
    metrics: ManagerMetrics
    emergency_active: bool = False


@dataclass(frozen=True)
class Callers:
    """Bearer tokens per audience: task submitters, agent workers, Alertmanager."""

    submitters: BearerAuth
    agents: BearerAuth
    alertmanager: BearerAuth


def problem(code: int, detail: str, retry_after: int | None = None) -> HTTPException:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return HTTPException(code, detail=detail, headers=headers)


async def manager_state(request: Request) -> ManagerState:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
    state: ManagerState = request.app.state.manager
    return state


def _callers(request: Request) -> Callers:
    callers: Callers = request.app.state.callers
    return callers


async def submitter(request: Request) -> None:
    await _callers(request).submitters(request)


async def _agent(request: Request) -> None:
    await _callers(request).agents(request)


async def _alertmanager(request: Request) -> None:
    await _callers(request).alertmanager(request)


async def _reader(request: Request) -> None:
    # Reads of tasks and agents: a submitter's or an agent's token.
    try:
        await _callers(request).submitters(request)
    except HTTPException:
        await _callers(request).agents(request)


State = Annotated[ManagerState, Depends(manager_state)]
Submitter = Depends(submitter)
AgentCaller = Depends(_agent)
AlertmanagerCaller = Depends(_alertmanager)
Reader = Depends(_reader)
