"""A real MCP server for tests, built with the official SDK and served over streamable HTTP on
127.0.0.1: a calculator whose tools log every call they receive."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mcp.server.mcpserver import MCPServer

from tests.servers import asgi_server, free_port

__all__ = ["ToolServer", "tool_server"]


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
