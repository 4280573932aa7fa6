"""A real OpenBao dev server for the secrets tests, with the platform's mounts on it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
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
from runtime.secrets.clock import utc_now
from tests.servers import BaoServer, bao_server

KV_MOUNT = "agents"  # the staging/prod default of vault.kvMount
TRANSIT_KEY = "agent-data"


class FakeClock:
    """Wall time that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def root_hvac(server: BaoServer) -> hvac.Client:
    return hvac.Client(url=server.address, token=server.root_token)


def prepare(server: BaoServer) -> None:
    """The mounts the Vault layer configures: KV v2 at `agents`, transit with one key."""
    root = root_hvac(server)
    root.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
    root.sys.enable_secrets_engine("transit", path="transit")
    root.secrets.transit.create_key(TRANSIT_KEY, mount_point="transit")


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


MakeClient = Callable[..., SecretsClient]


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
