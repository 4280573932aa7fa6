"""The LLM handler: one chat completion on any OpenAI-compatible endpoint.

The model is the one the cost engine chose for the task (its budget downgrade applied); the key
comes from a file Vault renders, never from settings values. Usage is the provider's `usage`
block; only a provider that reports none gets an estimate, marked as such. A 429 is retried
after its `Retry-After` (a 5xx after an exponential backoff), up to `max_attempts` calls, and is
never counted as success; other 4xx fail the task with the provider's message.

Tools: the model is offered the tools of the MCP servers the pool may use (runtime.worker.tools)
and its tool calls are run and answered until it gives a final answer, within
`max_tool_calls` per task and `tool_timeout_s` per call. The task's output lists every tool
call with its outcome, a refusal included. Every model call of the loop after the first is
reserved against the budgets and hourly limits before it is made (`task.model_calls`), and each
call's usage is reported as it comes: the cost engine holds and settles every call on its own.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from pydantic import JsonValue

from contracts.settings.llm import LLMSettings
from contracts.settings.service import read_secret_file
from contracts.settings.worker import WorkerSettings
from runtime.manager.queue import TokenUsage
from runtime.worker.handlers.base import (
    Handler,
    HandlerResult,
    RetryableError,
    TaskContext,
    TaskFailed,
)
from runtime.worker.tools import ToolBox, ToolCall

__all__ = ["LLMHandler", "LLMSettings", "build", "messages_of"]


def messages_of(payload: JsonValue, system_prompt: str) -> list[dict[str, Any]]:
    """Chat messages from a task payload: a string, {"prompt": ...} or {"messages": [...]}."""
    system = {"role": "system", "content": system_prompt}
    if isinstance(payload, str):
        return [system, {"role": "user", "content": payload}]
    if isinstance(payload, dict):
        messages = payload.get("messages")
        if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
            return [system, *(dict(m) for m in messages if isinstance(m, dict))]
        prompt = payload.get("prompt")
        if isinstance(prompt, str):
            return [system, {"role": "user", "content": prompt}]
    raise TaskFailed("payload must be a string, {'prompt': str} or {'messages': [...]}")


def _retry_after(response: httpx.Response, fallback: float, cap: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        return min(cap, fallback)


class LLMHandler:
    def __init__(self, settings: LLMSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        headers = {}
        if settings.api_key_file is not None:
            key = read_secret_file(settings.api_key_file, "AGENTOPS_LLM_API_KEY_FILE")
            headers["Authorization"] = f"Bearer {key}"
        self.http = httpx.AsyncClient(
            base_url=str(settings.base_url).rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=5.0),
            transport=transport,
        )

    async def __call__(self, task: TaskContext) -> HandlerResult:
        s = self.settings
        model = task.model or s.model
        if model is None:
            raise TaskFailed("no model: the cost engine chose none and AGENTOPS_LLM_MODEL is unset")
        messages = messages_of(task.payload, s.system_prompt)
        servers = {name: str(url) for name, url in s.tool_servers.items()}
        gate = task.tool_gate
        async with ToolBox(
            servers, s.tool_timeout_s, s.max_tool_calls, gate, task.on_tool_call
        ) as tools:
            usage: list[TokenUsage] = []
            estimated = False
            meter = task.model_calls
            # One answer per allowed call, and one more after a refusal of the last: at most
            # MAX_MODEL_CALLS model calls.
            for _ in range(s.max_tool_calls + 2):
                body: dict[str, Any] = {
                    "model": model,
                    "messages": messages,
                    "max_tokens": s.max_tokens,
                    "temperature": s.temperature,
                }
                if tools.offered() and not tools.exhausted:
                    body["tools"] = tools.offered()
                answer = await self._complete(body)
                message, spent, guessed = _message(model, answer, body)
                usage.append(spent)
                if meter is not None:
                    meter.spent(spent)
                estimated = estimated or guessed
                requested = message.get("tool_calls") or []
                if not requested:
                    return _result(message.get("content"), usage, estimated, tools.calls)
                if meter is not None:
                    # The model's answer to these tools' results is the next call: reserved
                    # before the tools run, so a budget that cannot hold it costs no tool call.
                    model = await meter.reserve_next(model)
                messages = [*messages, message]
                for asked in requested:
                    done = await _tool_call(tools, asked)
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": asked.get("id", ""),
                            "content": done.result,
                        }
                    )
        raise TaskFailed(f"the model still asked for tools after {s.max_tool_calls} tool calls")

    async def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion, retried through rate limits and provider errors."""
        s = self.settings
        delay = s.backoff_s
        last = "no call made"
        for _ in range(s.max_attempts):
            try:
                response = await self.http.post("/chat/completions", json=body)
            except httpx.HTTPError as err:
                last = f"provider unreachable: {type(err).__name__}"
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if response.status_code == 200:
                return response.json()  # type: ignore[no-any-return]
            if response.status_code == 429:
                last = "provider rate limit (429)"
                await asyncio.sleep(_retry_after(response, delay, s.max_retry_after_s))
                delay *= 2
                continue
            if response.status_code >= 500:
                last = f"provider error {response.status_code}"
                await asyncio.sleep(delay)
                delay *= 2
                continue
            raise TaskFailed(
                f"provider refused the request ({response.status_code}): {_error_message(response)}"
            )
        # Out of calls for this attempt: the task goes back to the queue with backoff.
        raise RetryableError(f"{last} after {s.max_attempts} calls")

    async def aclose(self) -> None:
        await self.http.aclose()


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = response.text
    return str(message)[:300]


def _message(
    model: str, answer: dict[str, Any], body: dict[str, Any]
) -> tuple[dict[str, Any], TokenUsage, bool]:
    """The answer's message, the call's usage and whether that usage is an estimate."""
    try:
        message = answer["choices"][0]["message"]
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RetryableError("provider answered without choices[0].message") from None
    if content is None and not message.get("tool_calls"):
        raise RetryableError("provider answered without content or tool calls")
    reported = answer.get("usage")
    if isinstance(reported, dict):
        usage = TokenUsage(
            str(answer.get("model") or model),
            int(reported.get("prompt_tokens", 0)),
            int(reported.get("completion_tokens", 0)),
        )
        return message, usage, False
    # No usage block: about four characters a token, flagged in the output.
    prompt = json.dumps(body["messages"])
    answered = content if isinstance(content, str) else json.dumps(message.get("tool_calls"))
    return message, TokenUsage(model, max(1, len(prompt) // 4), max(1, len(answered) // 4)), True


async def _tool_call(tools: ToolBox, call: dict[str, Any]) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        function = {}
    return await tools.call(str(function.get("name", "")), str(function.get("arguments") or "{}"))


def _result(
    content: str | None, usage: list[TokenUsage], estimated: bool, calls: list[ToolCall]
) -> HandlerResult:
    output: dict[str, JsonValue] = {"content": content, "usage_estimated": estimated}
    if calls:
        output["tool_calls"] = [c.summary() for c in calls]
    return HandlerResult(output=output, usage=tuple(usage))


def build(_: WorkerSettings) -> Handler:
    return LLMHandler(LLMSettings())
