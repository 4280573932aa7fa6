"""A real OpenBao dev server for the secrets tests, with the platform's mounts on it
(helpers in tests/runtime/secrets/bao.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from pydantic import SecretStr

from runtime.secrets import (
    AuditTrail,
    Login,
    RecentAudit,
    SecretsClient,
    StaticToken,
    VaultSettings,
)
from tests.runtime.secrets.bao import FakeClock, MakeClient, prepare, root_hvac
from tests.servers import BaoServer, bao_server


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    with bao_server(tmp_path_factory.mktemp("bao")) as server:
        prepare(server)
        yield server


@pytest.fixture
def fresh_bao(tmp_path: Path) -> Iterator[BaoServer]:
    """A server of its own, for tests that seal or stop it."""
    with bao_server(tmp_path / "bao") as server:
        prepare(server)
        yield server


@pytest.fixture
def root(bao: BaoServer) -> hvac.Client:
    return root_hvac(bao)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recent() -> RecentAudit:
    return RecentAudit(capacity=500)


@pytest.fixture
def make_client(bao: BaoServer, clock: FakeClock, recent: RecentAudit) -> MakeClient:
    """A SecretsClient on `bao` (or `server`), by default with the root token."""

    def make(
        *,
        server: BaoServer | None = None,
        token: str | None = None,
        login: Login | None = None,
        address: str | None = None,
        audit: AuditTrail | None = None,
        **settings: object,
    ) -> SecretsClient:
        target = server or bao
        values: dict[str, object] = {
            "address": address or target.address,
            "token": SecretStr(token or target.root_token),
            "pod_name": "manager-7d9f-abcde",
            **settings,
        }
        return SecretsClient.from_settings(
            VaultSettings.model_validate(values),
            login=login or StaticToken(SecretStr(token or target.root_token)),
            clock=clock,
            audit=audit or AuditTrail([recent]),
        )

    return make


@pytest.fixture
def admin(make_client: MakeClient) -> SecretsClient:
    return make_client()


@pytest.fixture
def folder() -> str:
    """A KV folder no other test writes to."""
    return f"pools/test-{uuid.uuid4().hex[:12]}"
