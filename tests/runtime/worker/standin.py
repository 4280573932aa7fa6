"""A local stand-in for an OpenAI-compatible provider: the chat-completions HTTP contract, with
scripted answers (429 with Retry-After, 5xx, 4xx, missing usage) and a log of what it received.
Served by uvicorn on 127.0.0.1 in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.servers import free_port

__all__ = ["Answer", "Provider", "provider"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    retry_after: str | None = None
    usage: bool = True
    message: str = "done"


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
            reply: dict[str, Any] = {
                "id": f"chatcmpl-{len(self.received)}",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
            }
            if answer.usage:
                prompt_tokens = sum(len(m["content"].split()) for m in body["messages"]) + 7
                reply["usage"] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content.split()),
                    "total_tokens": prompt_tokens + len(content.split()),
                }
            return JSONResponse(reply)

        return app


@contextmanager
def provider(key: str, script: list[Answer] | None = None) -> Iterator[Provider]:
    stand_in = Provider(key, list(script or []))
    server = uvicorn.Server(
        uvicorn.Config(stand_in.app(), host="127.0.0.1", port=stand_in.port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("stand-in provider did not start")
        time.sleep(0.02)
    try:
        yield stand_in
    finally:
        server.should_exit = True
        thread.join(timeout=10)
