"""A local stand-in for an OpenAI-compatible provider: the chat-completions HTTP contract, with
scripted answers (429 with Retry-After, 5xx, 4xx, missing usage, a tool call) and a log of what
it received.
Served by uvicorn on 127.0.0.1 in a background thread."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.servers import asgi_server, free_port

__all__ = ["Answer", "Provider", "provider"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    retry_after: str | None = None
    usage: bool = True
    message: str = "done"
    # (tool name, arguments): the model asks for this tool call instead of answering.
    tool_call: tuple[str, dict[str, Any]] | None = None
    # (prompt, completion) tokens to report instead of the word counts.
    tokens: tuple[int, int] | None = None


@dataclass
class Provider:
    key: str
    script: list[Answer] = field(default_factory=list)  # consumed in order; then 200s
    received: list[dict[str, Any]] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> JSONResponse:
            body = await request.json()
            self.received.append({"headers": dict(request.headers), "body": body})
            if request.headers.get("authorization") != f"Bearer {self.key}":
                return JSONResponse(
                    {"error": {"message": "Incorrect API key provided", "type": "auth"}}, 401
                )
            answer = self.script.pop(0) if self.script else Answer()
            if answer.status != 200:
                headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
                return JSONResponse(
                    {"error": {"message": answer.message, "type": "scripted"}},
                    answer.status,
                    headers=headers,
                )
            content = f"answer to {body['messages'][-1]['content']}"
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if answer.tool_call is not None:
                name, arguments = answer.tool_call
                content = ""
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{len(self.received)}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)},
                        }
                    ],
                }
            reply: dict[str, Any] = {
                "id": f"chatcmpl-{len(self.received)}",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if answer.tool_call else "stop",
                    }
                ],
            }
            if answer.usage:
                words = (len((m.get("content") or "").split()) for m in body["messages"])
                prompt_tokens = sum(words) + 7
                prompt_tokens, completion_tokens = answer.tokens or (
                    prompt_tokens,
                    len(content.split()),
                )
                reply["usage"] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
            return JSONResponse(reply)

        return app


@contextmanager
def provider(key: str, script: list[Answer] | None = None) -> Iterator[Provider]:
    stand_in = Provider(key, list(script or []))
    with asgi_server(stand_in.app(), stand_in.port):
        yield stand_in
