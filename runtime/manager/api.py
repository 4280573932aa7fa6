"""The manager's HTTP API: tasks (submitters), agents (workers), Alertmanager's webhook.

Every mutating endpoint needs a bearer token of its audience: submitters, agent workers and
Alertmanager each have their own token file. Bodies are validated with limits on every field
(runtime/manager/schemas.py); the routes live per resource in runtime/manager/routes/ and share
their dependencies as `Annotated` aliases (runtime/manager/deps.py).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from runtime.manager.deps import Callers, ManagerState
from runtime.manager.routes import agents, alerts, tasks
from runtime.service.lean import add_lean_routes

__all__ = ["Callers", "ManagerState", "install_api", "router"]

router = APIRouter()
for part in (tasks, agents, alerts):
    router.include_router(part.router)


def install_api(app: FastAPI, state: ManagerState, callers: Callers) -> None:
    """Serve the API on `app` for this manager's state and callers."""
    app.state.manager = state
    app.state.callers = callers
    app.include_router(router)
    add_lean_routes(app, tasks.router)
