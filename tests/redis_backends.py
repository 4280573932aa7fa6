"""The Redis a runtime test runs against: a standalone redis-server and a real 3-shard Redis
Cluster (3 primaries, 3 replicas), both on 127.0.0.1, both stopped by PID.

A module opts in with `redis = backends(...)`; its tests then run once per backend. The cluster
is started once per session and flushed before each test. A test that needs one server it can
restart or signal is marked `standalone_only` and is skipped on the cluster with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import RedisClusterServers, RedisServer, redis_cluster, redis_server

__all__ = ["backends", "cluster_servers"]

Backend = RedisServer | RedisClusterServers


@pytest.fixture(scope="session")
def cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


def backends(appendfsync: str = "everysec") -> Callable[..., Iterator[Any]]:
    """A `redis` fixture parametrized over standalone and cluster."""

    @pytest.fixture(params=["standalone", "cluster"])
    def redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
        if request.param == "standalone":
            with redis_server(tmp_path / "redis", appendfsync=appendfsync) as server:
                yield server
            return
        marker = request.node.get_closest_marker("standalone_only")
        if marker is not None:
            pytest.skip(f"standalone only: {marker.args[0] if marker.args else ''}")
        cluster: RedisClusterServers = request.getfixturevalue("cluster_servers")
        cluster.wait_ok()
        cluster.flush()
        yield cluster

    return redis
