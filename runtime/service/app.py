"""The HTTP shell every runtime service shares: probes, metrics, limits and error bodies.

A service builds its FastAPI app with `create_app` and adds its own routers. The shell gives
it `/health` (the process answers), `/ready` (its dependencies answer, with the details in the
body), `/metrics` (its own registry), a request-body size limit answered with 413, request
metrics per route template, and 4xx bodies that name the field at fault without echoing what
was sent (a body may carry credentials).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import context
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import endpoints
from contracts.telemetry import metrics as m
from runtime.service.auth import BearerAuth
from runtime.service.lean import fast_lanes
from runtime.service.redis import TRANSIENT_REDIS_ERRORS, Outage
from runtime.service.series import Counter, Gauge, Histogram
from runtime.service.tracing import CARRIED_HEADERS, caller_context

__all__ = ["UNAVAILABLE_RETRY_AFTER_S", "ReadyCheck", "ShellMetrics", "create_app"]

log = logging.getLogger("agentops.service")

# Retry-After of a 503 while Redis is unavailable: a restart, an AOF load or a failover takes
# seconds; clients back off and come back, nothing they sent was taken.
UNAVAILABLE_RETRY_AFTER_S = 2
_PROBES = frozenset({endpoints.HEALTH, endpoints.READY, endpoints.METRICS})

# name → (ok, detail); the details are what /ready shows an operator.
ReadyCheck = Callable[[], Awaitable[Mapping[str, tuple[bool, Any]]]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"request body larger than the limit of {limit} bytes"}, status_code=413
    )


def _read_headers(headers: Sequence[tuple[bytes, bytes]]) -> tuple[int | None, dict[str, str]]:
    """The declared body length (None: not declared, the body is counted as it arrives) and
    the trace-context headers, in one pass over the request's headers."""
    declared: int | None = None
    carried: dict[str, str] = {}
    for name, value in headers:
        if name == b"content-length":
            declared = int(value) if value.isdigit() else None
        elif name in CARRIED_HEADERS:
            carried[name.decode("latin-1")] = value.decode("latin-1")
    return declared, carried


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive` that fails once the body streamed so far is over the limit."""
    seen = 0

    async def counting() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return counting


class _Shell:
    """The shell's one ASGI layer around every request (one layer, not three: this wraps each
    request of the hot paths):

    - the request runs in the caller's trace context (W3C `traceparent`, see tracing.py);
    - a body over the limit, declared or streamed, gets 413 before the app parses it;
    - requests and their duration are recorded per route template (bounded labels), and an
      API call answered below 500 ends a Redis outage (said before the answer leaves, so
      whoever got the answer can read the line)."""

    def __init__(
        self, app: ASGIApp, service: FastAPI, limit: int, metrics: ShellMetrics, outage: Outage
    ) -> None:
        self.app = app
        # Built with the middleware stack, on the first request: every route is in by then.
        self.lanes = fast_lanes(service)
        self.limit = limit
        self.metrics = metrics
        self.outage = outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        declared, carried = _read_headers(scope["headers"])
        code = 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                if self.outage.active and code < 500 and _endpoint(scope) not in _PROBES:
                    self.outage.recovered()
            await send(message)

        token = context.attach(caller_context(carried))
        try:
            await self._limited(scope, receive, sending, declared)
        finally:
            context.detach(token)
            self._record(scope, code, time.perf_counter() - started)

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, declared: int | None
    ) -> None:
        if declared is not None and declared > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        try:
            # A declared length is what the HTTP parser delivers: only an undeclared body
            # (chunked) is counted as it arrives.
            body = receive if declared is not None else _counted(receive, self.limit)
            await self._route(scope)(scope, body, send)
        except _BodyTooLarge:
            await _too_large(self.limit)(scope, receive, send)

    def _route(self, scope: Scope) -> ASGIApp:
        """The fast lane's app for a lean route (the route noted for the metrics, as the
        router would), else the framework's stack."""
        lane = self.lanes.get((scope["method"], scope["path"]))
        if lane is None:
            return self.app
        scope["route"] = lane[0]
        return lane[1]

    def _record(self, scope: Scope, code: int, seconds: float) -> None:
        endpoint = _endpoint(scope)
        if endpoint == endpoints.METRICS:
            return
        # Each label set's series is found once (runtime.service.series).
        self.metrics.requests.labels(endpoint, scope["method"], code).inc()
        self.metrics.duration.labels(endpoint, scope["method"]).observe(seconds)


def _endpoint(scope: Scope) -> str:
    """The route template the request matched ("unmatched" before routing or for none)."""
    return getattr(scope.get("route"), "path", "unmatched")


def _location(loc: Sequence[int | str], unknown: bool) -> str:
    """Where the problem is, without echoing what was sent: the name of an unknown field and a
    bad mapping key are the client's text, so they are left out."""
    parts = [str(p) for p in loc if p != "body"]
    if "[key]" in parts:
        at = parts.index("[key]")
        parts = [*parts[: at - 1], "[key]"]
    if unknown and parts:
        parts = parts[:-1]
    return ".".join(parts)


def _validation_body(err: RequestValidationError) -> tuple[int, dict[str, Any]]:
    problems = []
    status = 422
    for e in err.errors():
        if e.get("type") == "json_invalid":
            position = e.get("loc", ("body", "?"))[-1]
            problems.append({"field": "body", "error": f"malformed JSON at position {position}"})
            status = 400
            continue
        location = _location(e.get("loc", ()), e.get("type") == "extra_forbidden")
        message = "unknown field" if e.get("type") == "extra_forbidden" else e.get("msg")
        problems.append({"field": location or "body", "error": message or "invalid"})
    return status, {"detail": "invalid request", "errors": problems}


class ShellMetrics:
    """The series every runtime HTTP service exports through its shell."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            m.HTTP_REQUESTS,
            "HTTP requests served",
            ["endpoint", "method", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            m.HTTP_DURATION,
            "HTTP request duration in seconds",
            ["endpoint", "method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.token_file_ok = Gauge(
            m.TOKEN_FILE_OK, "Token file readable", ["realm"], registry=registry
        )


def create_app(
    *,
    title: str,
    version: str,
    registry: CollectorRegistry,
    ready: ReadyCheck,
    lifespan: Lifespan | None = None,
    max_body_bytes: int,
    auths: Sequence[BearerAuth] = (),
) -> FastAPI:
    """`auths`: the service's token files; one that cannot be re-read makes it unready."""
    # `_created` series double every counter's cardinality and no dashboard reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    # FastAPI's own telemetry off: the shell records the request metrics and carries the
    # trace context (the service's spans are children of the caller's, not of a framework
    # span), and left on it asks OpenTelemetry for its providers on every request.
    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    outage = app.state.redis_outage = Outage(log, f"{title}: Redis")
    shell = ShellMetrics(registry)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        status, body = _validation_body(err)
        return JSONResponse(body, status_code=status)

    async def _unavailable(_: Request, err: Exception) -> JSONResponse:
        if not isinstance(err, TRANSIENT_REDIS_ERRORS):
            raise err  # a bug, not an outage: the server error it is
        outage.failed(err)
        return JSONResponse(
            {"detail": "the state store is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        )

    app.add_exception_handler(RedisError, _unavailable)
    app.add_exception_handler(OSError, _unavailable)

    def token_checks() -> dict[str, tuple[bool, Any]]:
        checks: dict[str, tuple[bool, Any]] = {}
        for auth in auths:
            ok, detail = auth.check()
            shell.token_file_ok.labels(auth.realm).set(int(ok))
            checks[f"tokens:{auth.realm}"] = (ok, detail)
        return checks

    @app.get(endpoints.HEALTH, tags=["probes"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(endpoints.READY, tags=["probes"])
    async def ready_probe() -> JSONResponse:
        checks = {**await ready(), **token_checks()}
        ok = all(passed for passed, _ in checks.values())
        if ok:
            outage.recovered()
        body = {
            "status": "ready" if ok else "not ready",
            "checks": {name: {"ok": passed, "detail": d} for name, (passed, d) in checks.items()},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get(endpoints.METRICS, tags=["probes"], include_in_schema=False)
    async def metrics() -> Response:
        token_checks()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.lean_routes = []  # see runtime.service.lean.add_lean_routes
    app.add_middleware(_Shell, service=app, limit=max_body_bytes, metrics=shell, outage=outage)
    return app
