"""What the cost engine's routes share: the engine as an `Annotated` dependency, the caller's
token check, the error bodies and the span of a task's call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from opentelemetry.trace import Span, SpanKind
from pydantic import BaseModel

from runtime.cost.engine import CostEngine
from runtime.cost.limits import RateLimited
from runtime.service.auth import BearerAuth
from runtime.service.lean import lean_route, read_body
from runtime.service.tracing import tracer

__all__ = [
    "Caller",
    "Engine",
    "answer",
    "authorize",
    "error",
    "invalid",
    "lean",
    "span",
    "unknown_model",
]

_tracer = tracer("agentops.cost")


async def _engine(request: Request) -> CostEngine:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
    engine: CostEngine = request.app.state.engine
    return engine


async def authorize(request: Request) -> None:
    """The caller's bearer token (every route of the API, as the router's dependency)."""
    auth: BearerAuth = request.app.state.auth
    await auth(request)


Engine = Annotated[CostEngine, Depends(_engine)]
Caller = Depends(authorize)
M = TypeVar("M", bound=BaseModel)


def lean(model: type[M], route: Callable[[M, CostEngine], Awaitable[Response]]) -> type[APIRoute]:
    """The route class serving a hot route's requests without FastAPI's per-request
    machinery (runtime.service.lean): the body read first, then the caller's token checked,
    the body validated as `model`, and `route` (the same function FastAPI declares) called."""

    async def serve(request: Request) -> Response:
        body = await read_body(request, model, authorize)
        return await route(body, request.app.state.engine)

    return lean_route(serve)


def answer(body: BaseModel, status_code: int = 200) -> Response:
    """A route's body as JSON, serialised once by its own model: FastAPI would validate the
    route's return value against `response_model` again and encode it in Python (the hot
    routes declare the model for the API's schema all the same)."""
    return Response(body.model_dump_json(), status_code, media_type="application/json")


def error(code: int, body: dict[str, Any], retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=code, headers=headers)


def rate_limited(err: RateLimited) -> JSONResponse:
    """429 with Retry-After: the scope, dimension and limit that refused the call."""
    body = {"detail": str(err), "scope": err.scope, "dimension": err.dimension, "limit": err.limit}
    return error(429, body, err.retry_after_s)


def invalid(field: str, reason: str) -> JSONResponse:
    """A 422 in the shape of the service's validation errors: the field and what is allowed."""
    return error(422, {"detail": "invalid request", "errors": [{"field": field, "error": reason}]})


def unknown_model(engine: CostEngine) -> JSONResponse:
    # The submitted name is not repeated: the body lists what is allowed instead.
    return invalid("model", f"not a priced, configured model: {', '.join(engine.book.models)}")


def span(name: str, task_id: str, attempt: int, model: str) -> AbstractContextManager[Span]:
    """A span of the task's trace: the worker's call carries its context (traceparent)."""
    return _tracer.start_as_current_span(
        name,
        kind=SpanKind.SERVER,
        attributes={"task_id": task_id, "attempt": attempt, "model": model},
    )
