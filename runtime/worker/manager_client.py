"""The worker's calls to the manager's agent API: register, heartbeat, drain, deregister."""

from __future__ import annotations

import httpx

from contracts import endpoints
from contracts.settings.service import read_secret_file
from contracts.settings.worker import WorkerSettings

__all__ = ["ManagerClient", "ManagerRefused"]


class ManagerRefused(RuntimeError):
    """The manager answered with a 4xx: retrying the same call will not help."""


class ManagerClient:
    def __init__(self, settings: WorkerSettings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        token = read_secret_file(settings.agent_token_file, "AGENTOPS_AGENT_TOKEN_FILE")
        # One connection pool for the worker's life, not a session per call.
        self.http = httpx.AsyncClient(
            base_url=str(settings.manager_url),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, connect=3.0),
            transport=transport,
        )
        self._agent = f"{endpoints.AGENTS_API}/{settings.agent_id}"

    async def _send(self, method: str, path: str, json: object = None) -> httpx.Response:
        response = await self.http.request(method, path, json=json)
        if 400 <= response.status_code < 500 and response.status_code != 404:
            raise ManagerRefused(f"{method} {path}: {response.status_code} {response.text[:300]}")
        if response.status_code >= 500:
            response.raise_for_status()
        return response

    async def register(self) -> None:
        s = self.settings
        await self._send(
            "POST",
            endpoints.AGENTS_API,
            {
                "agent_id": s.agent_id,
                "agent_type": s.agent_type,
                "capacity": s.capacity,
                "weight": s.weight,
                "labels": s.labels,
                "request_types": s.request_types,
                "max_complexity": s.max_complexity,
            },
        )

    async def heartbeat(self) -> bool:
        """False when the manager no longer knows this agent (it must register again)."""
        return (await self._send("POST", f"{self._agent}/heartbeat")).status_code == 200

    async def drain(self) -> None:
        await self._send("POST", f"{self._agent}/drain")

    async def deregister(self) -> None:
        await self._send("DELETE", self._agent)

    async def aclose(self) -> None:
        await self.http.aclose()
