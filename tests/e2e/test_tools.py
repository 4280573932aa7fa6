"""Tools end to end on the local platform: a task on an LLM pool makes the stand-in provider ask
for a tool, the worker calls a real MCP server (the SDK's, started here) and the final answer
holds the tool's result; the call is a metric in Prometheus and a span in the task's trace. A
pool the server is not allowed to is refused before any request, and its task result says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.telemetry import metrics as m
from tests.e2e.platform import eventually, local_platform
from tests.e2e.test_traces import WORKER, tracing_env
from tests.otlp import otlp_receiver
from tests.runtime.worker.mcp_server import tool_server
from tests.runtime.worker.standin import Answer, provider

KEY = "sk-e2e-tools-0123456789abcdef"
ALLOWED, DENIED = "tool-user", "no-tools"
ADD = Answer(tool_call=("calc__add", {"a": 20, "b": 22}))


def llm_pool(name: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": {"repository": "agent-worker", "tag": "dev"},
        "resources": {
            "cpuRequest": "100m",
            "cpuLimit": "500m",
            "memoryRequest": "128Mi",
            "memoryLimit": "256Mi",
        },
        "minReplicas": 1,
        "maxReplicas": 1,
        "handler": "runtime.worker.handlers.llm:build",
        "model": "gpt-5",
        "provider": {
            "baseUrl": url,
            "models": ["gpt-5", "gpt-5-mini"],
            "key": {"path": f"pools/agent-{name}/openai", "field": "apiKey"},
        },
    }


def test_a_tool_call_runs_end_to_end_and_a_pool_without_permission_is_refused(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "llm-key"
    key_file.write_text(KEY)
    with (
        tool_server("calc") as server,
        provider(KEY, [ADD]) as llm,
        otlp_receiver() as receiver,
    ):
        llm_env = {"AGENTOPS_LLM_BASE_URL": llm.url, "AGENTOPS_LLM_API_KEY_FILE": str(key_file)}
        with local_platform(
            tmp_path,
            workers=1,
            env=tracing_env(receiver),
            pools=[llm_pool(ALLOWED, llm.url), llm_pool(DENIED, llm.url)],
            pool_env={
                ALLOWED: {**llm_env, "AGENTOPS_LLM_TOOL_SERVERS": json.dumps({"calc": server.url})},
                DENIED: llm_env,
            },
        ) as platform:
            allowed = platform.submit(
                agent_type=ALLOWED, team="research", payload={"prompt": "what is 20 + 22?"}
            ).json()["task_id"]
            (done,) = eventually("the tool task finished", lambda: platform.finished([allowed]))
            assert done["status"] == "succeeded", done
            assert server.received == [("add", {"a": 20, "b": 22})]
            assert done["result"]["content"] == "answer to 42", "the answer holds the result"
            assert done["result"]["tool_calls"] == [
                {"server": "calc", "tool": "add", "outcome": "ok", "result": "42"}
            ]

            llm.script.append(ADD)
            denied = platform.submit(
                agent_type=DENIED, team="research", payload={"prompt": "what is 20 + 22?"}
            ).json()["task_id"]
            (refused,) = eventually(
                "the refused task finished", lambda: platform.finished([denied])
            )
            assert server.received == [("add", {"a": 20, "b": 22})], "no request from the pool"
            (refusal,) = refused["result"]["tool_calls"]
            assert refusal["outcome"] == "refused"
            assert "not allowed" in refusal["result"]

            calls = f"sum by (agent_type, team, server, tool, outcome) ({m.WORKER_TOOL_CALLS})"

            def both() -> list[dict[str, Any]] | None:
                found = platform.promql(calls)
                return found if len(found) == 2 else None

            series = eventually("both tool calls in Prometheus", both)
            by_pool = {s["metric"]["agent_type"]: s["metric"] for s in series}
            assert by_pool[ALLOWED] == {
                "agent_type": ALLOWED,
                "team": "research",
                "server": "calc",
                "tool": "add",
                "outcome": "ok",
            }
            assert by_pool[DENIED]["outcome"] == "refused"
            latency = platform.scalar(f'sum({m.WORKER_TOOL_CALL_DURATION}_count{{tool="add"}})')
            assert latency == 2

            def tool_span() -> Any:
                spans = list(receiver.spans)
                (attempt,) = [
                    s for s in spans if s.name == "attempt" and s.attributes["task_id"] == allowed
                ]
                handler = [
                    s for s in spans if s.name == "handler" and s.trace_id == attempt.trace_id
                ]
                tools = [
                    s for s in spans if s.name == "tool call" and s.trace_id == attempt.trace_id
                ]
                return (handler[0], tools[0]) if handler and tools else None

            handler, span = eventually("the tool call's span", tool_span)
            assert span.service == WORKER
            assert span.parent_span_id == handler.span_id, "the call is a step of the handler"
            assert span.attributes["tool.server"] == "calc"
            assert span.attributes["tool.name"] == "add"
            assert span.attributes["tool.outcome"] == "ok"
