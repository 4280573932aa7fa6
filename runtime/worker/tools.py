"""MCP tools in the agent loop: the tools a pool may use, discovered and called over streamable
HTTP with the official MCP Python SDK.

A pool's allowed servers come from its settings (`AGENTOPS_LLM_TOOL_SERVERS`, rendered from
`agents.toolServers[].allowedPools`). The model is offered their tools as `<server>__<tool>`;
a call to any other name is refused here, before any request leaves the worker. Every call is
bounded by a timeout, counted against the task's limit, traced as a span and reported to the
task's observer (the worker's metrics).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mcp import Client
from opentelemetry.trace import SpanKind, Status, StatusCode

from contracts.settings.llm import TOOL_SEPARATOR
from runtime.service.tracing import tracer
from runtime.worker.handlers.base import RetryableError

__all__ = [
    "SEPARATOR",
    "ToolBox",
    "ToolCall",
    "ToolGate",
    "ToolLimited",
    "ToolOutcome",
    "qualified",
]

SEPARATOR = TOOL_SEPARATOR
# Connecting to a server and listing its tools: bounded apart from the per-call timeout.
DISCOVERY_TIMEOUT_S = 10.0
_tracer = tracer("agentops.worker.tools")


class ToolOutcome(StrEnum):
    OK = "ok"  # the server answered with a result
    ERROR = "error"  # the server answered with an error result (isError)
    TIMEOUT = "timeout"  # no answer within the per-call timeout
    UNREACHABLE = "unreachable"  # the transport failed
    REFUSED = "refused"  # the pool may not use this tool: no request was made
    OVER_LIMIT = "over_limit"  # the task's or the team's limit of calls was reached


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for, and what came of it."""

    server: str
    tool: str
    outcome: ToolOutcome
    seconds: float
    result: str  # what the model is told

    def summary(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tool": self.tool,
            "outcome": str(self.outcome),
            "result": self.result[:500],
        }


_NOT_MADE = frozenset({ToolOutcome.REFUSED, ToolOutcome.OVER_LIMIT})


class ToolLimited(Exception):
    """The team's hourly tool-call limit refused this call."""


# Called before a permitted call leaves the worker (the team's hourly limit); raises ToolLimited.
ToolGate = Callable[[str, str], Awaitable[None]]


def qualified(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


def _split(name: str) -> tuple[str, str]:
    server, sep, tool = name.partition(SEPARATOR)
    return (server, tool) if sep else ("", name)


def _text(result: Any) -> str:
    parts = [getattr(c, "text", None) for c in result.content]
    texts = [p for p in parts if isinstance(p, str)]
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content)
    return ""


class ToolBox:
    """The tools of a pool's allowed MCP servers, for one task (an async context manager)."""

    def __init__(
        self,
        servers: Mapping[str, str],
        timeout_s: float,
        max_calls: int,
        gate: ToolGate | None = None,
        observe: Callable[[ToolCall], None] | None = None,
    ) -> None:
        self.servers = dict(servers)
        self.timeout_s = timeout_s
        self.max_calls = max_calls
        self.gate = gate
        self.observe = observe
        self.calls: list[ToolCall] = []
        self._clients: dict[str, Client] = {}
        self._tools: dict[str, dict[str, Any]] = {}  # qualified name → OpenAI tool spec
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> ToolBox:
        server = ""
        try:
            for server, url in self.servers.items():
                # asyncio.timeout, not wait_for: the SDK's anyio scopes stay in this task.
                async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                    client = Client(url, read_timeout_seconds=DISCOVERY_TIMEOUT_S)
                    self._clients[server] = await self._stack.enter_async_context(client)
                    listed = await client.list_tools()
                for tool in listed.tools:
                    self._tools[qualified(server, tool.name)] = {
                        "type": "function",
                        "function": {
                            "name": qualified(server, tool.name),
                            "description": tool.description or "",
                            "parameters": tool.input_schema,
                        },
                    }
        except Exception as err:
            await self._stack.aclose()
            # The task comes back later: a tool server down is no failure of the task.
            raise RetryableError(
                f"tool server {server!r} unavailable: {type(err).__name__}"
            ) from None
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()

    def offered(self) -> list[dict[str, Any]]:
        """The tools the model may call, as chat-completions `tools`."""
        return list(self._tools.values())

    @property
    def exhausted(self) -> bool:
        """The task made all the calls it may (refusals made no call and do not count)."""
        made = [c for c in self.calls if c.outcome not in _NOT_MADE]
        return len(made) >= self.max_calls

    async def call(self, name: str, arguments: str) -> ToolCall:
        server, tool = _split(name)
        with _tracer.start_as_current_span(
            "tool call",
            kind=SpanKind.CLIENT,
            attributes={"tool.server": server, "tool.name": tool},
        ) as span:
            started = time.perf_counter()
            outcome, result = await self._run(name, server, tool, arguments)
            done = ToolCall(server, tool, outcome, time.perf_counter() - started, result)
            span.set_attribute("tool.outcome", str(outcome))
            if outcome is not ToolOutcome.OK:
                span.set_status(Status(StatusCode.ERROR, result[:200]))
        self.calls.append(done)
        if self.observe is not None:
            self.observe(done)
        return done

    async def _run(
        self, name: str, server: str, tool: str, arguments: str
    ) -> tuple[ToolOutcome, str]:
        if name not in self._tools:
            return ToolOutcome.REFUSED, f"refused: tool {name!r} is not allowed for this pool"
        if self.exhausted:
            return ToolOutcome.OVER_LIMIT, f"refused: {self.max_calls} tool calls per task"
        try:
            args = json.loads(arguments or "{}")
        except ValueError:
            return ToolOutcome.ERROR, "arguments are not JSON"
        if not isinstance(args, dict):
            return ToolOutcome.ERROR, "arguments must be a JSON object"
        if self.gate is not None:
            try:
                await self.gate(server, tool)
            except ToolLimited as err:
                return ToolOutcome.OVER_LIMIT, f"refused: {err}"
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await self._clients[server].call_tool(tool, args)
        except TimeoutError:
            return ToolOutcome.TIMEOUT, f"no answer within {self.timeout_s:g}s"
        except Exception as err:  # the SDK's transport and protocol errors
            return ToolOutcome.UNREACHABLE, f"tool server failed: {type(err).__name__}"
        text = _text(answer)
        return (ToolOutcome.ERROR if answer.is_error else ToolOutcome.OK), text
