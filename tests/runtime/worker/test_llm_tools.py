"""MCP tools in the LLM handler's loop: the stand-in provider asks for a tool, the handler calls a
real MCP server (the official SDK over streamable HTTP) and answers the model with the result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts.settings.llm import LLMSettings
from runtime.worker.handlers.base import HandlerResult, TaskFailed
from runtime.worker.handlers.llm import LLMHandler
from runtime.worker.tools import ToolCall, ToolLimited, ToolOutcome
from tests.runtime.worker.mcp_server import tool_server
from tests.runtime.worker.standin import Answer, provider
from tests.runtime.worker.test_llm_handler import KEY, key_file, run, task

__all__ = ["key_file"]  # the fixture, shared

ADD = Answer(tool_call=("calc__add", {"a": 2, "b": 3}))


def call_with_tools(
    url: str, key: Path, calls: list[ToolCall], gate: Any = None, **settings: Any
) -> HandlerResult:
    async def go() -> HandlerResult:
        handler = LLMHandler(LLMSettings(base_url=url, api_key_file=key, **settings))
        context = task({"prompt": "what is 2 + 3?"})
        context = type(context)(**{**context.__dict__, "on_tool_call": calls.append})
        if gate is not None:
            context = type(context)(**{**context.__dict__, "tool_gate": gate})
        try:
            return await handler(context)
        finally:
            await handler.aclose()

    return run(go())


def test_the_model_gets_the_tool_result_and_answers_with_it(key_file: Path) -> None:
    calls: list[ToolCall] = []
    with tool_server("calc") as server, provider(KEY, [ADD]) as p:
        result = call_with_tools(p.url, key_file, calls, tool_servers={"calc": server.url})
    assert server.received == [("add", {"a": 2, "b": 3})]
    first, second = p.received
    offered = {t["function"]["name"] for t in first["body"]["tools"]}
    assert offered == {"calc__add", "calc__wait"}
    assert second["body"]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "5",
    }
    assert isinstance(result.output, dict)
    assert result.output["content"] == "answer to 5"
    assert result.output["tool_calls"] == [
        {"server": "calc", "tool": "add", "outcome": "ok", "result": "5"}
    ]
    assert [(c.server, c.tool, c.outcome) for c in calls] == [("calc", "add", ToolOutcome.OK)]
    assert len(result.usage) == 2, "both model calls are charged"


def test_a_pool_without_the_server_is_refused_before_any_request(key_file: Path) -> None:
    calls: list[ToolCall] = []
    with tool_server("calc") as server, provider(KEY, [ADD]) as p:
        result = call_with_tools(p.url, key_file, calls)
    assert server.received == [], "no request reached the tool server"
    assert "tools" not in p.received[0]["body"], "no tool is offered to a pool without servers"
    assert isinstance(result.output, dict)
    (refusal,) = result.output["tool_calls"]  # type: ignore[misc]
    assert refusal["outcome"] == "refused"
    assert "calc__add" in refusal["result"]
    assert [c.outcome for c in calls] == [ToolOutcome.REFUSED]


def test_a_slow_tool_times_out(key_file: Path) -> None:
    calls: list[ToolCall] = []
    slow = Answer(tool_call=("calc__wait", {"seconds": 3}))
    with tool_server("calc") as server, provider(KEY, [slow]) as p:
        result = call_with_tools(
            p.url, key_file, calls, tool_servers={"calc": server.url}, tool_timeout_s=0.5
        )
    assert [c.outcome for c in calls] == [ToolOutcome.TIMEOUT]
    assert isinstance(result.output, dict)
    assert result.output["content"] == "answer to no answer within 0.5s"


def test_calls_past_the_tasks_limit_are_refused(key_file: Path) -> None:
    calls: list[ToolCall] = []
    with tool_server("calc") as server, provider(KEY, [ADD, ADD]) as p:
        call_with_tools(p.url, key_file, calls, tool_servers={"calc": server.url}, max_tool_calls=1)
    assert len(server.received) == 1
    assert [c.outcome for c in calls] == [ToolOutcome.OK, ToolOutcome.OVER_LIMIT]
    assert "tools" not in p.received[1]["body"], "no tools are offered once the limit is spent"


def test_a_model_that_keeps_calling_fails_the_task(key_file: Path) -> None:
    with (
        tool_server("calc") as server,
        provider(KEY, [ADD] * 5) as p,
        pytest.raises(TaskFailed, match="after 1 tool calls"),
    ):
        call_with_tools(p.url, key_file, [], tool_servers={"calc": server.url}, max_tool_calls=1)
    assert len(p.received) == 3


def test_the_teams_limit_refuses_before_the_call_leaves(key_file: Path) -> None:
    asked: list[tuple[str, str]] = []

    async def gate(server: str, tool: str) -> None:
        asked.append((server, tool))
        raise ToolLimited("team research: 0 tool calls per hour")

    calls: list[ToolCall] = []
    with tool_server("calc") as server, provider(KEY, [ADD]) as p:
        result = call_with_tools(p.url, key_file, calls, gate, tool_servers={"calc": server.url})
    assert asked == [("calc", "add")]
    assert server.received == []
    assert [c.outcome for c in calls] == [ToolOutcome.OVER_LIMIT]
    assert isinstance(result.output, dict)
    assert "per hour" in result.output["content"]


def test_a_server_name_with_the_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="tool server name 'a__b'"):
        LLMSettings(base_url="http://127.0.0.1:1/v1", tool_servers={"a__b": "http://127.0.0.1:2"})


def test_a_tool_server_down_gives_the_task_back(key_file: Path) -> None:
    from runtime.worker.handlers.base import RetryableError
    from tests.servers import free_port

    down = f"http://127.0.0.1:{free_port()}/mcp"
    with provider(KEY, [ADD]) as p, pytest.raises(RetryableError, match="'calc' unavailable"):
        call_with_tools(p.url, key_file, [], tool_servers={"calc": down}, tool_timeout_s=2)
    assert p.received == [], "the model is not asked before its tools are known"
