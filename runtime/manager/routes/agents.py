"""Agents: workers register, heartbeat, drain and leave; callers list them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from contracts import endpoints
from contracts.settings.manager import AGENT_TYPE_PATTERN
from runtime.manager.deps import AgentCaller, ManagerState, Reader, State, problem
from runtime.manager.registry import AgentProfile
from runtime.manager.routes.tasks import served
from runtime.manager.schemas import AgentId, AgentRegistration, AgentView, Heartbeat

__all__ = ["router"]

router = APIRouter(tags=["agents"])
_AGENT = f"{endpoints.AGENTS_API}/{{agent_id}}"


async def _mirrored(state: ManagerState, agent_id: str) -> AgentView:
    """The agent as the registry has it now, pushed into this replica's balancer."""
    record = await state.registry.get(agent_id)
    if record is None:
        raise problem(status.HTTP_404_NOT_FOUND, "agent is not registered")
    state.dispatcher.balancer.upsert(record.state())
    state.dispatcher.wake()
    return AgentView.of(record)


@router.post(
    endpoints.AGENTS_API,
    status_code=status.HTTP_201_CREATED,
    response_model=AgentView,
    dependencies=[AgentCaller],
)
async def register(body: AgentRegistration, state: State) -> AgentView:
    await state.registry.register(
        AgentProfile(
            agent_id=body.agent_id,
            agent_type=served(state, body.agent_type),
            capacity=body.capacity,
            weight=body.weight,
            labels=body.labels,
            request_types=frozenset(body.request_types),
            max_complexity=body.max_complexity,
        )
    )
    return await _mirrored(state, body.agent_id)


@router.post(f"{_AGENT}/heartbeat", response_model=Heartbeat, dependencies=[AgentCaller])
async def heartbeat(agent_id: AgentId, state: State) -> Heartbeat:
    known = await state.registry.heartbeat(agent_id)
    if not known:
        raise problem(status.HTTP_404_NOT_FOUND, "agent is not registered: register again")
    return Heartbeat(registered=True)


@router.post(f"{_AGENT}/drain", response_model=AgentView, dependencies=[AgentCaller])
async def drain(agent_id: AgentId, state: State) -> AgentView:
    await state.registry.drain(agent_id)
    return await _mirrored(state, agent_id)


@router.delete(_AGENT, status_code=status.HTTP_204_NO_CONTENT, dependencies=[AgentCaller])
async def deregister(agent_id: AgentId, state: State) -> Response:
    s = state.settings
    # Whatever it still holds goes back to the queue before it is forgotten.
    await state.queue.evacuate(
        agent_id, f"agent {agent_id} deregistered", s.retry_backoff_s, s.retry_backoff_max_s
    )
    if not await state.registry.deregister(agent_id):
        raise problem(status.HTTP_404_NOT_FOUND, "agent is not registered")
    state.dispatcher.balancer.remove(agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(endpoints.AGENTS_API, response_model=list[AgentView], dependencies=[Reader])
async def list_agents(
    state: State,
    agent_type: Annotated[str | None, Query(pattern=AGENT_TYPE_PATTERN)] = None,
) -> list[AgentView]:
    records = await state.registry.snapshot()
    return [
        AgentView.of(a) for a in records if agent_type is None or a.profile.agent_type == agent_type
    ]
