"""Routes for hot endpoints: FastAPI's contract, without FastAPI's per-request machinery.

A route built with `lean_route(handler)` keeps everything FastAPI derives once from the
endpoint's signature (the OpenAPI operation, the path, the methods, the route's place in the
request metrics), but each request goes straight to `handler(request)`: no dependency solving,
no request-body model built through FastAPI's field machinery, no second validation of the
response model. The handler takes its request with `read_body`: the body read first, as
FastAPI does (a body that stops arriving gets the read deadline's 408 whoever sends it), then
the caller authenticated, then the body validated with `json_body`, which fails as FastAPI's
own body parsing does (the shell turns the error into 400/422 naming the field); it raises
`HTTPException` as any endpoint would.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "Handler",
    "Lanes",
    "LeanRoute",
    "add_lean_routes",
    "fast_lanes",
    "json_body",
    "lean_route",
    "read_body",
]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
M = TypeVar("M", bound=BaseModel)

# What FastAPI answers for a body that is not a JSON object sent as JSON (no body at all, or
# another content type): the model's place is named, nothing sent is echoed.
_MISSING = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
_NOT_JSON = {
    "type": "model_attributes_type",
    "loc": ("body",),
    "msg": "Input should be a valid dictionary or object to extract fields from",
    "input": None,
}


class LeanRoute(APIRoute):
    """An APIRoute whose requests one handler serves (see `lean_route`)."""


def lean_route(handler: Handler) -> type[APIRoute]:
    """The route class (for `add_api_route(route_class_override=...)`) whose requests
    `handler` serves; the endpoint given with it only describes the operation."""

    class Lean(LeanRoute):
        def get_route_handler(self) -> Handler:
            return handler

    return Lean


def add_lean_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve the router's lean routes (fixed paths, the router included in `app` without a
    prefix) through the fast lane too: the shell hands their requests straight to them,
    past the framework's routing and its per-request exit stacks."""
    for route in router.routes:
        if not isinstance(route, LeanRoute):
            continue
        if "{" in route.path:
            raise ValueError(f"lean route {route.path}: only fixed paths take the fast lane")
        app.state.lean_routes.append(route)


Lanes = dict[tuple[str, str], tuple[LeanRoute, ASGIApp]]


def fast_lanes(app: FastAPI) -> Lanes:
    """(method, path) → the lean route and the ASGI app that serves it, with the exception
    handlers the app's own stack applies (HTTPException, validation errors, an outage)."""
    handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
    lanes: Lanes = {}
    for route in app.state.lean_routes:
        lane = ExceptionMiddleware(_serving(route.get_route_handler()), handlers=handlers)
        for method in route.methods:
            lanes[(method, route.path)] = (route, lane)
    return lanes


def _serving(handler: Handler) -> ASGIApp:
    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return serve


def _is_json(content_type: str | None) -> bool:
    """application/json or application/*+json, as FastAPI's strict content type reads it."""
    if content_type is None:
        return False
    kind = content_type.partition(";")[0].strip().lower()
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _body_errors(err: ValidationError) -> list[dict[str, Any]]:
    """The model's errors located in the body, as FastAPI locates them."""
    return [{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)]


def _as_fastapi_does(raw: bytes, model: type[M]) -> M:
    """Python's JSON reader, then the model: the slow path for bodies the fast reader and
    model refuse (Python's reader accepts a few the fast one does not, e.g. a lone surrogate
    escape, which the model then names), so every body gets the answer FastAPI's parsing
    gives it."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        error = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error"}
        raise RequestValidationError([{**error, "input": {}, "ctx": {"error": e.msg}}]) from None
    except UnicodeDecodeError:
        raise RequestValidationError([_NOT_JSON]) from None
    if not isinstance(data, dict):  # JSON, but no object: FastAPI names the body as a whole
        raise RequestValidationError([_NOT_JSON])
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise RequestValidationError(_body_errors(err)) from None


def json_body(raw: bytes, content_type: str | None, model: type[M]) -> M:
    """A request's body validated as `model` in one pass over the bytes."""
    if not raw:
        raise RequestValidationError([_MISSING])
    if not _is_json(content_type):
        raise RequestValidationError([_NOT_JSON])
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        # Refused: the answer FastAPI's parsing gives (the JSON reader's and the model's
        # messages differ for a body that is no object, a value the readers take apart).
        return _as_fastapi_does(raw, model)


async def read_body(
    request: Request, model: type[M], authenticate: Callable[[Request], Awaitable[None]]
) -> M:
    """A lean route's request taken as FastAPI takes it: the body read, the caller
    authenticated (the route's dependency), the body validated as `model`."""
    raw = await request.body()
    await authenticate(request)
    return json_body(raw, request.headers.get("content-type"), model)
