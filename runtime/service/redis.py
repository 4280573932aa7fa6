"""One way to open the Redis connection pool a service uses, and the typed, decoded reads
every service shares."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from pydantic import AnyUrl
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contracts.settings.service import CLUSTER_SCHEMES, SENTINEL_SCHEME, ServiceSettings
from runtime.service.resp import packing_class

__all__ = [
    "NO_REPLICAS",
    "TRANSIENT_REDIS_ERRORS",
    "AcceptingScript",
    "NotReplicated",
    "OrderedScripts",
    "Outage",
    "Replication",
    "ScriptBatch",
    "connect",
    "connect_url",
    "decoded",
    "hget",
    "hgetall",
    "hmget",
    "ordered",
    "replicated",
    "reply",
    "run_script_batch",
    "sentinel_target",
    "text",
    "writable",
    "zrangebyscore",
]

T = TypeVar("T")

SENTINEL_PORT = 26379
# No reply within this long is a lost node, not a slow one: the longest blocking read the
# runtime issues (XREADGROUP/XREAD BLOCK) is 500 ms. Without it, a read from a primary that
# vanished mid-reply waits forever, and on a cluster it does so holding the topology lock.
SOCKET_TIMEOUT_S: Final = 5.0


class NotReplicated(RedisError):
    """A write the primary took but fewer replicas than required confirmed within the timeout:
    a failover could still lose it, so it is not answered as accepted. Transient: the caller
    retries under the same idempotency key, which makes the retry find the write."""


@dataclass(frozen=True)
class Replication:
    """How many replicas must confirm an accepting write (a submit, a usage record, a
    reservation) and how long to wait for them: `ServiceSettings.redis_min_replicas`."""

    replicas: int = 0
    timeout_ms: int = 500

    @classmethod
    def of(cls, settings: ServiceSettings) -> Replication:
        return cls(settings.redis_min_replicas, settings.redis_replica_timeout_ms)


NO_REPLICAS: Final = Replication()


# "Redis cannot serve this now", not "this request is wrong": down or restarting (connection
# errors, BusyLoadingError while it loads its data), out of memory, a replica or a failover in
# progress. Callers back off and retry; the HTTP services answer 503 with Retry-After.
TRANSIENT_REDIS_ERRORS: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    MasterDownError,
    TryAgainError,
    ClusterDownError,
    SlotNotCoveredError,  # a cluster client between a lost primary and its promoted replica
    NotReplicated,
    OSError,
)


class Outage:
    """One log line when a dependency becomes unavailable and one when it is back, however
    many requests or loop steps meet it in between."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.since: float | None = None
        self.refused = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, err: BaseException) -> None:
        self.refused += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s unavailable (%s): backing off until it is back", self.what, err)

    def recovered(self) -> None:
        if self.since is not None:
            self.log.warning(
                "%s back after %.1fs (%d calls met the outage)",
                self.what,
                time.monotonic() - self.since,
                self.refused,
            )
            self.since, self.refused = None, 0


async def writable(redis: Redis, probe_key: str) -> tuple[bool, str]:
    """Whether Redis takes a write now: a ping answers while Redis is out of memory or
    read-only, a write does not. For /ready."""
    try:
        await reply(redis.set(probe_key, "1", ex=60))
    except OutOfMemoryError:
        return False, "out of memory (maxmemory reached): writes refused"
    except TRANSIENT_REDIS_ERRORS as err:
        return False, f"unavailable: {type(err).__name__}"
    return True, "write ok"


def sentinel_target(url: AnyUrl) -> tuple[str, int]:
    """The master set and database a `redis+sentinel://host:port/<master set>/<db>` URL names."""
    parts = [p for p in (url.path or "").split("/") if p]
    if not 1 <= len(parts) <= 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"{SENTINEL_SCHEME} URL needs /<master set>[/<db>], not {url.path!r}")
    return parts[0], int(parts[1]) if len(parts) == 2 else 0


def connect(settings: ServiceSettings, *, max_connections: int = 64) -> Redis:
    """The service's pool (one per process, shared by every request: no connection per call)."""
    return connect_url(
        settings.redis_url, settings.redis_password(), max_connections=max_connections
    )


def connect_url(
    url: AnyUrl | str, password: str | None = None, *, max_connections: int = 64
) -> Redis:
    """A client for a standalone primary, a Sentinel-watched master or a cluster, as the URL's
    scheme says (see `ServiceSettings.redis_url`)."""
    url = AnyUrl(url) if isinstance(url, str) else url
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "health_check_interval": 15,
        "socket_keepalive": True,
        "socket_connect_timeout": 5,
        "socket_timeout": SOCKET_TIMEOUT_S,
    }
    if url.scheme == SENTINEL_SCHEME:
        master, db = sentinel_target(url)
        # Sentinel shares the data password (auth on both, as the state layer installs it); the
        # pool asks it for the master on every new connection, so a failover is followed.
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [(url.host or "", url.port or SENTINEL_PORT)],
            sentinel_kwargs={"password": password, "socket_connect_timeout": 5},
        )
        master_client: Redis = sentinel.master_for(master, db=db, password=password, **options)
        return _hiredis_packing(master_client)
    if url.scheme in CLUSTER_SCHEMES:
        # The client maps slots to nodes from any node it reaches and refreshes the map on
        # MOVED or a lost node, so a promoted replica is followed without a restart.
        cluster = FollowingCluster(
            host=url.host or "",
            port=url.port or 6379,
            password=password,
            ssl=url.scheme == CLUSTER_SCHEMES[1],
            **options,
        )
        # Nodes found later take the class from `connection_kwargs`.
        packing = packing_class(cluster.connection_kwargs["connection_class"])
        cluster.connection_kwargs["connection_class"] = packing
        for node in cluster.nodes_manager.startup_nodes.values():
            node.connection_class = packing
        # Not a subclass of Redis, but the same command API: every caller is typed against
        # Redis, and the few cluster differences (pipelines of scripts) are handled here.
        return cast(Redis, cluster)
    return _hiredis_packing(Redis.from_url(str(url), password=password, **options))


def _hiredis_packing(client: Redis) -> Redis:
    """The client's connections pack commands with hiredis (runtime.service.resp); the class
    the URL chose (TLS, Unix socket, Sentinel-managed) is kept."""
    pool = client.connection_pool
    pool.connection_class = packing_class(pool.connection_class)
    return client


# Set while a command or pipeline of a FollowingCluster runs: an `aclose()` inside one is
# redis-py reacting to a node's error, not the service shutting its client down.
_IN_CALL: ContextVar[bool] = ContextVar("agentops_cluster_call", default=False)


class _FollowingPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        token = _IN_CALL.set(True)
        try:
            return await super().execute(raise_on_error, allow_redirections)
        finally:
            _IN_CALL.reset(token)


class FollowingCluster(RedisCluster):
    """A cluster client that follows a failover under load.

    redis-py (5.x) answers a connection error, a MOVED past its threshold or a slot not
    covered by calling `aclose()` on the whole client: it disconnects every connection of
    every node, including the ones other requests are using at that moment (they then fail
    with `'NoneType' object has no attribute 'writelines'`, or wait forever for a close while
    holding the topology lock — the failover test hung on both). Here such an error only marks
    the topology stale: the next command relearns it under redis-py's lock, and a node that
    left the topology is disconnected then (redis-py's `set_nodes`). `aclose()` outside a
    command closes the client as before."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        token = _IN_CALL.set(True)
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            _IN_CALL.reset(token)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py's refusal
        return _FollowingPipeline(self)  # type: ignore[abstract]  # as redis-py's own

    async def aclose(self) -> None:
        if _IN_CALL.get():
            self._initialize = True
            return
        await super().aclose()


async def reply(value: Awaitable[T] | T) -> T:
    """The asyncio client's answer, typed as the value: redis-py types every command as
    "awaitable or value" (one signature for both clients)."""
    if inspect.isawaitable(value):
        return await value
    return value


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decoded(fields: Mapping[Any, Any]) -> dict[str, str]:
    """A hash or stream entry with text keys and values."""
    return {text(k): text(v) for k, v in fields.items()}


async def hgetall(redis: Redis, key: str) -> dict[str, str]:
    return decoded(await reply(redis.hgetall(key)))


async def hget(redis: Redis, key: str, field: str) -> str | None:
    raw = await reply(redis.hget(key, field))
    return None if raw is None else text(raw)


async def hmget(redis: Redis, key: str, fields: list[str]) -> list[str | None]:
    return [None if v is None else text(v) for v in await reply(redis.hmget(key, fields))]


async def zrangebyscore(
    redis: Redis, key: str, low: float | str, high: float | str, count: int
) -> list[str]:
    return [text(v) for v in await reply(redis.zrangebyscore(key, low, high, 0, count))]


async def run_script_batch(
    redis: Redis, script: AsyncScript, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    """Several calls of one script (`(keys, args)` each) in one round trip. A cluster's
    pipeline does not load scripts a node has not seen (after a failover the promoted replica
    knows none), so there each call carries the script's text (EVAL, cached by the node)."""
    if isinstance(redis, RedisCluster):
        cluster_pipe: Any = redis.pipeline()
        for ks, a in calls:
            cluster_pipe.eval(script.script, len(ks), *ks, *a)
        async with _topology_errors_transient():
            return list(await cluster_pipe.execute())
    results = await _evalsha_all(redis, script, calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:  # a restarted or flushed server: nothing of those ran, load and run them
        await reply(redis.script_load(script.script))
        again = await _evalsha_all(redis, script, [calls[i] for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    failed = next((r for r in results if isinstance(r, Exception)), None)
    if failed is not None:
        raise failed
    return results


async def _evalsha_all(
    redis: Redis, script: AsyncScript, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    """EVALSHA of every call in one pipeline, errors as values. Not `script(client=pipe)`:
    redis-py then asks SCRIPT EXISTS before every pipeline, a second round trip each time."""
    pipe = redis.pipeline(transaction=False)
    for ks, a in calls:
        pipe.evalsha(script.sha, len(ks), *ks, *a)
    return list(await pipe.execute(raise_on_error=False))


class ScriptBatch:
    """Calls of one script made in the same turn of the event loop go to Redis together, in
    one pipeline (one send, one read) instead of one round trip each. Each call is still its
    own atomic script with its own answer; when the pipeline fails (connection lost), every
    call of it fails with that error, as a lone call would, and its caller retries it."""

    def __init__(self, redis: Redis, script: AsyncScript) -> None:
        self.redis = redis
        self.script = script
        self._calls: list[tuple[Sequence[Any], Sequence[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[list[Any]]] = set()

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        if not self._calls:
            loop.call_soon(self._send)
        self._calls.append((keys, args, answer))
        return await answer

    def _send(self) -> None:
        calls, self._calls = self._calls, []
        sending = asyncio.get_running_loop().create_task(
            run_script_batch(self.redis, self.script, [(ks, a) for ks, a, _ in calls])
        )
        self._sending.add(sending)
        answers = [answer for *_, answer in calls]
        sending.add_done_callback(lambda done: self._answer(done, answers))

    def _answer(self, done: asyncio.Task[list[Any]], answers: list[asyncio.Future[Any]]) -> None:
        self._sending.discard(done)
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        results = [None] * len(answers) if error else done.result()
        for answer, result in zip(answers, results, strict=True):
            if answer.done():  # its caller was cancelled meanwhile
                continue
            if error:
                answer.set_exception(error)
            else:
                answer.set_result(result)


class OrderedScripts:
    """Script calls on one client, run by the server in the order they are made, with few
    round trips: the calls made while a pipeline is out go together in the next one, sent
    once its answer is in. One pipeline at a time on one connection, so a call made after
    another runs after it; each is still its own atomic script with its own answer (an error
    answers its own call only; a lost connection fails every call of the pipeline, as it
    would each lone call). What it is for: a step that must follow another (an attempt's
    outcome stored, then its usage charged) without a round trip between them.

    On a cluster the order holds per node only. A call of a script the server lost (after a
    restart: NOSCRIPT, nothing ran) is sent again after the calls that followed it, so a call
    whose successors must not run before it is sent `by_text` (EVAL: never NOSCRIPT)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._calls: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    def call(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any], by_text: bool = False
    ) -> asyncio.Future[Any]:
        """Queue the call now; its answer (or error) arrives on the future."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._calls.append(_Call(script, keys, args, by_text, answer))
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_all())
        return answer

    async def _send_all(self) -> None:
        while self._calls:
            calls, self._calls = self._calls, []
            try:
                results = await _ordered_pipeline(self.redis, calls)
            except Exception as err:  # the connection: every call of the pipeline met it
                results = [err] * len(calls)
            for call, result in zip(calls, results, strict=True):
                if call.answer.done():  # its caller was cancelled meanwhile
                    continue
                if isinstance(result, Exception):
                    call.answer.set_exception(result)
                else:
                    call.answer.set_result(result)


@dataclass(frozen=True)
class _Call:
    script: AsyncScript
    keys: Sequence[Any]
    args: Sequence[Any]
    by_text: bool
    answer: asyncio.Future[Any]


_ORDERED: weakref.WeakKeyDictionary[Redis, OrderedScripts] = weakref.WeakKeyDictionary()


def ordered(redis: Redis) -> OrderedScripts:
    """The client's one ordered script stream (every caller on this client shares it)."""
    found = _ORDERED.get(redis)
    if found is None:
        found = _ORDERED[redis] = OrderedScripts(redis)
    return found


async def _ordered_pipeline(redis: Redis, calls: Sequence[_Call]) -> list[Any]:
    """Every call in one pipeline, in order; answers and error replies as values."""
    if isinstance(redis, RedisCluster):
        cluster_pipe: Any = redis.pipeline()
        for c in calls:
            cluster_pipe.eval(c.script.script, len(c.keys), *c.keys, *c.args)
        async with _topology_errors_transient():
            return list(await cluster_pipe.execute(raise_on_error=False))
    pipe = redis.pipeline(transaction=False)
    for c in calls:
        if c.by_text:
            pipe.eval(cast(str, c.script.script), len(c.keys), *c.keys, *c.args)
        else:
            pipe.evalsha(c.script.sha, len(c.keys), *c.keys, *c.args)
    results = list(await pipe.execute(raise_on_error=False))
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:  # a restarted server lost its scripts: those calls ran nothing
        for script in {id(calls[i].script): calls[i].script for i in missing}.values():
            script.sha = await reply(redis.script_load(script.script))
        again = await _ordered_pipeline(redis, [calls[i] for i in missing])
        for i, result in zip(missing, again, strict=True):
            results[i] = result
    return results


class AcceptingScript:
    """A write script whose answer means "accepted" (a usage record, a reservation): with
    replicas to wait for, each call is written and confirmed on its own (`replicated`);
    without, concurrent calls share pipelines in the client's ordered stream (`ordered`)."""

    def __init__(self, redis: Redis, source: str, replication: Replication) -> None:
        self.redis = redis
        self.replication = replication
        self.script = redis.register_script(source)
        self._stream = ordered(redis)

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if self.replication.replicas > 0:
            return await replicated(self.redis, self.script, keys, args, self.replication)
        return await self._stream.call(self.script, keys, args)


_TOPOLOGY_OUTAGES: Final = ("cannot be connected", "slots are not covered")


@contextlib.asynccontextmanager
async def _topology_errors_transient() -> AsyncIterator[None]:
    """A cluster client that lost every node it knew, or that learnt the topology while a
    replica is being promoted (slots not all covered yet), says so with a bare
    RedisClusterException: an outage like a refused connection, not a bug."""
    try:
        yield
    except SlotNotCoveredError:
        raise
    except RedisClusterException as err:
        if not any(sign in str(err) for sign in _TOPOLOGY_OUTAGES):
            raise
        raise RedisConnectionError(str(err)) from err


# Answers of the write or of WAIT that mean "this node does not own the slot now" (a failover
# moved it, or the node that took the write is a replica since): nothing was accepted, the
# client relearns the topology and the caller retries under the same idempotency key.
_MOVED_ANSWERS: Final = (MovedError, AskError, TryAgainError, ClusterDownError, ReadOnlyError)


async def replicated(
    redis: Redis,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[Any],
    replication: Replication,
) -> Any:
    """Run a write script and answer only once `replication.replicas` replicas confirmed it
    (Redis WAIT); NotReplicated past its timeout. WAIT counts the writes of its own
    connection, so the script and WAIT go on one connection: on a cluster, one connection to
    the node owning the script's slot, never resent elsewhere (see `_write_then_wait`).
    With 0 replicas: the script alone."""
    replicas, timeout_ms = replication.replicas, replication.timeout_ms
    if replicas <= 0:
        return await script(keys=list(keys), args=list(args))
    if isinstance(redis, RedisCluster):
        async with _topology_errors_transient():
            result, confirmed = await _write_then_wait(redis, script, keys, args, replication)
    else:
        result, confirmed = await _write_then_wait_standalone(
            redis, script, keys, args, replication
        )
    if int(confirmed) < replicas:
        raise NotReplicated(
            f"{int(confirmed)} of {replicas} replicas confirmed the write within {timeout_ms} ms"
        )
    return result


async def _write_then_wait_standalone(
    redis: Redis,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[Any],
    replication: Replication,
) -> tuple[Any, Any]:
    """EVALSHA and WAIT in one round trip (redis-py's script pipeline would ask SCRIPT EXISTS
    first, a second one). NOSCRIPT wrote nothing: the script is loaded and both sent again."""
    for _ in range(2):
        pipe = redis.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", replication.replicas, replication.timeout_ms)
        result, confirmed = await pipe.execute(raise_on_error=False)
        if not isinstance(result, NoScriptError):
            break
        script.sha = await reply(redis.script_load(script.script))
    for answer in (result, confirmed):
        if isinstance(answer, Exception):
            raise answer
    return result, confirmed


async def _write_then_wait(
    cluster: RedisCluster,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[Any],
    replication: Replication,
) -> tuple[Any, Any]:
    """The script (EVAL) and WAIT written together on one connection to the slot's primary.

    A cluster pipeline resends a command that met MOVED to the new owner on another
    connection, so a WAIT there would count replicas for a write it did not see. Here nothing
    is resent: MOVED/ASK/TRYAGAIN/CLUSTERDOWN/READONLY or a lost connection means "not
    accepted" (NotReplicated or a connection error, both transient); the topology is marked
    stale and the caller's retry, under the same idempotency key, finds the first write if
    it was taken."""
    if cluster._initialize:
        await cluster.initialize()  # redis-py's lock: one refresh however many calls wait
    try:
        node = cluster.get_node_from_key(keys[0])
        if node is None:
            raise SlotNotCoveredError(f"no node serves the slot of {keys[0]}")
    except SlotNotCoveredError:
        cluster._initialize = True
        raise
    commands = [
        ("EVAL", script.script, len(keys), *keys, *args),
        ("WAIT", replication.replicas, replication.timeout_ms),
    ]
    connection = node.acquire_connection()
    try:
        await connection.send_packed_command(connection.pack_commands(commands), False)
        answers = [await _answer(connection) for _ in commands]
    except BaseException:
        cluster._initialize = True
        await connection.disconnect(nowait=True)
        raise
    finally:
        node._free.append(connection)
    for answer in answers:
        if isinstance(answer, _MOVED_ANSWERS) or _replica_refused_wait(answer):
            cluster._initialize = True
            raise NotReplicated(
                f"not accepted: the slot's owner changed ({type(answer).__name__}: {answer})"
            )
        if isinstance(answer, Exception):
            raise answer
    return answers[0], answers[1]


async def _answer(connection: Any) -> Any:
    """One reply; an error reply as its exception (so the next reply is still read)."""
    try:
        return await connection.read_response()
    except ResponseError as err:
        return err


def _replica_refused_wait(answer: Any) -> bool:
    return isinstance(answer, ResponseError) and "WAIT cannot be used with replica" in str(answer)
