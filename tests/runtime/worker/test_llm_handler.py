"""The LLM handler against a local stand-in of the chat-completions contract."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from runtime.manager.queue import TokenUsage
from runtime.worker.handlers.base import HandlerResult, RetryableError, TaskContext, TaskFailed
from runtime.worker.handlers.llm import LLMHandler, LLMSettings
from tests.runtime.worker.standin import Answer, provider

T = TypeVar("T")
KEY = "sk-test-0123456789abcdefghij"


def task(payload: Any, model: str | None = "gpt-4o") -> TaskContext:
    return TaskContext(
        task_id="0" * 32,
        attempt=1,
        agent_type="code-generator",
        request_type="code",
        team="research",
        complexity=0.5,
        payload=payload,
        model=model,
    )


def call(url: str, key_file: Path, context: TaskContext, **settings: Any) -> HandlerResult:
    async def go() -> HandlerResult:
        handler = LLMHandler(
            LLMSettings(base_url=url, api_key_file=key_file, backoff_s=0.01, **settings)
        )
        try:
            return await handler(context)
        finally:
            await handler.aclose()

    return run(go())


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "llm-key"
    path.write_text(KEY + "\n")
    return path


def test_usage_is_the_providers_and_the_model_the_cost_engines(key_file: Path) -> None:
    with provider(KEY) as p:
        result = call(p.url, key_file, task({"prompt": "write a test"}, model="gpt-4o"))
    (sent,) = p.received
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    assert sent["body"]["model"] == "gpt-4o"
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "write a test"}
    assert result.output == {"content": "answer to write a test", "usage_estimated": False}
    # The stand-in's own count: words of every message + 7, and of the answer.
    prompt_words = sum(len(m["content"].split()) for m in sent["body"]["messages"])
    assert result.usage == (TokenUsage("gpt-4o", prompt_words + 7, 5),)


def test_rate_limit_is_retried_after_retry_after_not_counted_as_success(key_file: Path) -> None:
    script = [Answer(429, retry_after="0.2"), Answer(429, retry_after="0.1")]
    with provider(KEY, script) as p:
        result = call(p.url, key_file, task("hello"))
    assert len(p.received) == 3
    assert result.output["content"] == "answer to hello"  # type: ignore[index]


def test_persistent_rate_limit_gives_the_task_back(key_file: Path) -> None:
    limited = pytest.raises(RetryableError, match=r"rate limit \(429\) after 3 calls")
    with provider(KEY, [Answer(429, retry_after="0")] * 5) as p, limited:
        call(p.url, key_file, task("hello"), max_attempts=3)
    assert len(p.received) == 3


def test_server_errors_back_off_then_succeed(key_file: Path) -> None:
    with provider(KEY, [Answer(503), Answer(500)]) as p:
        result = call(p.url, key_file, task("hello"))
    assert len(p.received) == 3
    assert result.usage[0].model == "gpt-4o"


def test_a_refusal_fails_the_task_with_the_providers_message_not_the_key(
    key_file: Path, tmp_path: Path
) -> None:
    refused = [Answer(400, message="model 'gpt-9' does not exist")]
    with provider(KEY, refused) as p, pytest.raises(TaskFailed, match="does not exist") as info:
        call(p.url, key_file, task("hello", model="gpt-9"))
    assert KEY not in str(info.value)
    wrong = tmp_path / "wrong-key"
    wrong.write_text("sk-wrong-key-000000000000")
    with provider(KEY) as p, pytest.raises(TaskFailed, match="401") as info:
        call(p.url, wrong, task("hello"))
    assert "sk-wrong" not in str(info.value)


def test_missing_usage_is_estimated_and_flagged(key_file: Path) -> None:
    with provider(KEY, [Answer(usage=False)]) as p:
        result = call(p.url, key_file, task({"messages": [{"role": "user", "content": "hi"}]}))
    assert result.output["usage_estimated"] is True  # type: ignore[index]
    assert result.usage[0].input_tokens > 0


def test_unusable_payload_fails_clearly(key_file: Path) -> None:
    with provider(KEY) as p, pytest.raises(TaskFailed, match="payload must be"):
        call(p.url, key_file, task({"nothing": 1}))
    assert p.received == []
