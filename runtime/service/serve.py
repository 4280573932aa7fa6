"""Start a service under uvicorn from its settings class; bad settings exit with the variable
names at fault, before anything listens."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from contracts.settings.service import ServiceSettings
from runtime.service.connections import read_deadline_protocol
from runtime.service.logs import configure_logging

__all__ = ["load_settings", "serve"]

S = TypeVar("S", bound=ServiceSettings)


def load_settings(settings_class: type[S]) -> S:
    try:
        return settings_class()
    except ValidationError as err:
        prefix = settings_class.model_config.get("env_prefix", "")
        lines = [f"invalid settings for {settings_class.__name__}:"]
        for e in err.errors():
            name = "_".join(str(p) for p in e["loc"]).upper()
            lines.append(f"  {prefix}{name}: {e['msg']}")
        sys.exit("\n".join(lines))


def serve(settings_class: type[S], factory: Callable[[S], FastAPI]) -> None:
    settings = load_settings(settings_class)
    configure_logging(settings.log_level)
    uvicorn.run(
        factory(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # JSON lines through the root handler (runtime.service.logs), not uvicorn's own format.
        log_config=None,
        access_log=False,
        # No service reads the client's address: X-Forwarded-* need no rewriting per request.
        proxy_headers=False,
        # Slow clients (issue 17): read deadlines, an idle limit and a cap on connections.
        http=read_deadline_protocol(settings.header_timeout_s, settings.body_timeout_s),
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections,
        # Kubernetes sends SIGTERM after preStop; in-flight requests get this long to finish.
        timeout_graceful_shutdown=20,
    )
