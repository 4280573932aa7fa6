"""`agentops dev up` runs redis-server with the stack's `redis.appendfsync`: the command line
the devstack builds, started for real, reports that policy (issue 17, defect 6)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from contracts.config import load_from_mapping
from ops.devstack.control import free_ports
from ops.devstack.layout import plan, process_names
from tests.stacks import stack_values
from tests.waiting import eventually


@pytest.mark.parametrize("fsync", ["always", "everysec", "no"])
def test_dev_redis_fsyncs_as_the_stack_says(fsync: str, tmp_path: Path) -> None:
    raw = copy.deepcopy(stack_values("local"))
    raw["redis"]["appendfsync"] = fsync
    cfg = load_from_mapping(raw)
    spec = plan(cfg, tmp_path, free_ports(process_names(cfg)), sys.executable).process("redis")
    (tmp_path / "redis").mkdir()
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=spec.port)
        eventually("redis-server answers", client.ping, timeout=10, ignoring=(redis.RedisError,))
        assert client.config_get("appendfsync") == {"appendfsync": fsync}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
