"""`agentops dev up` runs redis-server with the stack's `redis.appendfsync`: the command line
the devstack builds, started for real, reports that policy (issue 17, defect 6)."""

from __future__ import annotations

import copy
import signal
import sys
from pathlib import Path

import pytest
import redis

from contracts.config import load_from_mapping
from ops.devstack.control import free_ports
from ops.devstack.layout import plan, process_names
from tests.managed import ManagedProcess
from tests.stacks import stack_values


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
def test_dev_redis_fsyncs_as_the_stack_says(fsync: str, tmp_path: Path) -> None:
    raw = copy.deepcopy(stack_values("local"))
    raw["redis"]["appendfsync"] = fsync
    cfg = load_from_mapping(raw)
    spec = plan(cfg, tmp_path, free_ports(process_names(cfg)), sys.executable).process("redis")
    (tmp_path / "redis").mkdir()
    client = redis.Redis(host="127.0.0.1", port=spec.port)
    server = ManagedProcess(
        "redis-server",
        spec.argv,
        tmp_path / "redis-server.log",
        ready=client.ping,
        not_yet=(OSError, redis.RedisError),
        start_timeout=10,
    )
    try:
        server.start()
        assert client.config_get("appendfsync") == {"appendfsync": fsync}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        server.stop(signal.SIGKILL)
