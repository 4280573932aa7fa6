"""Commands packed by hiredis (runtime.service.resp): the bytes redis-py's own asyncio packer
sends, the same refusals, and every client `connect_url` opens packs that way against a real
redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from runtime.service.redis import connect_url
from runtime.service.resp import packed, packing_class
from tests.servers import redis_server

_REDIS_PY = Connection()  # redis-py's packer (Python), never connected

_ARG = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
)


def _redis_py(*args: Any) -> bytes:
    return b"".join(_REDIS_PY.pack_command(*args))


@given(st.sampled_from(["EVALSHA", "SET", "CONFIG GET", b"HSET", b"CLIENT SETNAME"]),
       st.lists(_ARG, max_size=40))  # fmt: skip
def test_the_bytes_are_redis_pys(command: str | bytes, args: list[Any]) -> None:
    assert packed(command, *args) == _redis_py(command, *args)


def test_a_memoryview_is_sent_as_its_bytes() -> None:
    view = memoryview(b"abc\x00def")[1:]
    assert packed("SET", "k", view) == _redis_py("SET", "k", view)


@pytest.mark.parametrize("bad", [True, None, object(), [1], {"a": 1}])
def test_what_redis_py_refuses_is_refused_with_its_error(bad: object) -> None:
    with pytest.raises(DataError):
        _redis_py("SET", "k", bad)
    with pytest.raises(DataError, match="got"):
        packed("SET", "k", bad)


def test_each_connection_kind_keeps_its_class_and_packs_with_hiredis() -> None:
    for cls in (Connection, SSLConnection, UnixDomainSocketConnection):
        packing = packing_class(cls)
        assert issubclass(packing, cls) and packing is not cls
        assert packing_class(packing) is packing  # applied once


def test_a_client_of_connect_url_packs_with_hiredis_on_a_real_server(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        redis = connect_url(url)
        assert redis.connection_pool.connection_class is packing_class(Connection)
        script = "return {KEYS[1], ARGV[1], ARGV[2], redis.call('INCRBYFLOAT', KEYS[1], ARGV[3])}"
        answer = await redis.eval(script, 1, "kä", "ü" * 300, 10**20, 1.25)  # type: ignore[misc, arg-type]
        assert answer == ["kä".encode(), ("ü" * 300).encode(), b"100000000000000000000", b"1.25"]
        pipe = redis.pipeline(transaction=False)
        pipe.set("CONFIG", b"\x00\xff")
        pipe.get("CONFIG")
        pipe.config_get("maxmemory")
        stored, value, config = await pipe.execute()
        assert (stored, value, list(config)) == (True, b"\x00\xff", ["maxmemory"])
        await redis.aclose()

    with redis_server(tmp_path / "redis") as server:
        asyncio.run(scenario(server.url))
