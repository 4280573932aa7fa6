"""The secrets tests' OpenBao: the platform's mounts, a clock tests move, the client factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import hvac

from runtime.secrets import (
    SecretsClient,
)
from runtime.secrets.clock import utc_now
from tests.servers import BaoServer

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


MakeClient = Callable[..., SecretsClient]
