"""A real MCP server for tests, built with the official SDK and served over streamable HTTP on
127.0.0.1: a calculator whose tools log every call they receive.

Run as a process (`python -m tests.runtime.worker.mcp_server NAME PORT METRICS_PATH`), it also
serves its Prometheus metrics on METRICS_PATH, as docs/operations.md#tool-servers asks of a
tool server's image: `mcp_tool_calls_total{tool,outcome}` counts the calls its tools received.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.managed import ManagedProcess, http_ok
from tests.servers import asgi_server, free_port

__all__ = ["TOOL_CALLS", "ToolServer", "tool_server", "tool_server_process"]

# The counter the process exports (the `_total` sample of the family `mcp_tool_calls`).
TOOL_CALLS = "mcp_tool_calls_total"


@dataclass
class ToolServer:
    name: str
    port: int = field(default_factory=free_port)
    received: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def server(self) -> MCPServer:
        mcp = MCPServer(self.name)

        @mcp.tool()
        def add(a: int, b: int) -> int:
            """Add two integers."""
            self.received.append(("add", {"a": a, "b": b}))
            return a + b

        @mcp.tool()
        async def wait(seconds: float) -> str:
            """Wait, then say so."""
            self.received.append(("wait", {"seconds": seconds}))
            await asyncio.sleep(seconds)
            return "waited"

        return mcp


@contextmanager
def tool_server(name: str = "calc") -> Iterator[ToolServer]:
    served = ToolServer(name)
    with asgi_server(served.server().streamable_http_app(), served.port):
        yield served


class _ToolCalls(Collector):
    """The calls the server's tools received so far, read at each scrape."""

    def __init__(self, served: ToolServer) -> None:
        self.served = served

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            TOOL_CALLS.removesuffix("_total"),
            "MCP tool calls received, by tool and outcome",
            labels=["tool", "outcome"],
        )
        for tool, count in sorted(Counter(t for t, _ in self.served.received).items()):
            family.add_metric([tool, "ok"], count)
        yield family


def instrumented_app(served: ToolServer, metrics_path: str) -> Starlette:
    """The SDK's streamable HTTP app, plus Prometheus' text format on `metrics_path`."""
    registry = CollectorRegistry()
    registry.register(_ToolCalls(served))

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = served.server().streamable_http_app()
    app.router.routes.append(Route(metrics_path, metrics, methods=["GET"]))
    return app


@contextmanager
def tool_server_process(
    directory: Path, name: str, port: int, metrics_path: str
) -> Iterator[ManagedProcess]:
    """This module as its own process on 127.0.0.1:`port`, stopped by PID."""
    handle = ManagedProcess(
        f"mcp-{name}",
        [sys.executable, "-m", __name__, name, str(port), metrics_path],
        directory / f"mcp-{name}.log",
        cwd=Path(__file__).resolve().parents[3],
        ready=lambda: http_ok(f"http://127.0.0.1:{port}{metrics_path}"),
    )
    try:
        yield handle.start()
    finally:
        handle.stop()


def main(argv: list[str]) -> None:
    import uvicorn

    name, port, metrics_path = argv[0], int(argv[1]), argv[2]
    app = instrumented_app(ToolServer(name, port), metrics_path)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
