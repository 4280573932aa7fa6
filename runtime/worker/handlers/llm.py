"""The LLM handler: one chat completion on any OpenAI-compatible endpoint.

The model is the one the cost engine chose for the task (its budget downgrade applied); the key
comes from a file Vault renders, never from settings values. Usage is the provider's `usage`
block; only a provider that reports none gets an estimate, marked as such. A 429 is retried
after its `Retry-After` (a 5xx after an exponential backoff), up to `max_attempts` calls, and is
never counted as success; other 4xx fail the task with the provider's message.
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
        body = {
            "model": model,
            "messages": messages_of(task.payload, s.system_prompt),
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
        }
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
                return self._result(model, response.json(), body)
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

    def _result(self, model: str, answer: dict[str, Any], body: dict[str, Any]) -> HandlerResult:
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise RetryableError("provider answered without choices[0].message.content") from None
        reported = answer.get("usage")
        estimated = not isinstance(reported, dict)
        if not estimated:
            assert isinstance(reported, dict)
            usage = TokenUsage(
                str(answer.get("model") or model),
                int(reported.get("prompt_tokens", 0)),
                int(reported.get("completion_tokens", 0)),
            )
        else:
            # No usage block: about four characters a token, flagged in the output.
            prompt = json.dumps(body["messages"])
            usage = TokenUsage(model, max(1, len(prompt) // 4), max(1, len(content or "") // 4))
        return HandlerResult(
            output={"content": content, "usage_estimated": estimated},
            usage=(usage,),
        )

    async def aclose(self) -> None:
        await self.http.aclose()


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = response.text
    return str(message)[:300]


def build(_: WorkerSettings) -> Handler:
    return LLMHandler(LLMSettings())
