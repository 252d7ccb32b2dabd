"""URL or client -> the Redis clients the manager uses; nothing else does.

The manager needs one client for commands (publisher, requests) and
dedicated connections for each blocking reader and for the subscriber, so
that a ``XREAD BLOCK`` never holds up a write. ``Connector`` builds them all
from one description, so credentials and TLS settings apply everywhere.
"""
from __future__ import annotations

import importlib
import os
import socket
from functools import partial
from typing import Any, Awaitable, Callable
from urllib.parse import urlparse

import redis.exceptions

# what the stream tasks import from here (reader, publisher)
from .errors import (CLUSTER_ERRORS, REFUSED_LOCALLY,  # noqa: F401
                     RESPONSE_ERRORS, RETRYABLE, TRANSIENT, explain,
                     transient, why)
from .runtime import wake_closed_waiters
from .steps import Steps
from .urls import FILE_OPTIONS, Target, parse_url

#: seconds to open a connection, unless redis_options say otherwise
CONNECT_TIMEOUT = 5.0
#: seconds a command may wait for its reply (not the readers' blocking
#: XREAD, nor PUB/SUB), unless redis_options say otherwise: a Redis that
#: stopped answering fails the command instead of hanging its caller
COMMAND_TIMEOUT = 15.0


def _keepalive_options() -> dict:
    """TCP keepalive probes after 10 s idle, every 5 s, 3 of them: a
    connection to a host that vanished (a partition: no reset ever comes)
    fails in about 25 s instead of hours."""
    wanted = (('TCP_KEEPIDLE', 10), ('TCP_KEEPALIVE', 10),  # macOS
              ('TCP_KEEPINTVL', 5), ('TCP_KEEPCNT', 3))
    return {getattr(socket, name): value for name, value in wanted
            if hasattr(socket, name)}


KEEPALIVE = _keepalive_options()
#: connection options a unix socket connection does not take
_TCP_ONLY = ('socket_keepalive', 'socket_keepalive_options')


def is_asyncio(client: Any) -> bool:
    """Whether ``client`` is a ``redis.asyncio`` or ``valkey.asyncio`` one
    (a cluster's node included)."""
    return any(c.__module__.startswith(('redis.asyncio', 'valkey.asyncio'))
               for c in type(client).__mro__)


def _is_cluster(client: Any) -> bool:
    return hasattr(client, 'get_nodes')


def _check_world(client: Any, asyncio: bool) -> None:
    """``TypeError`` for a client of the other world than the manager's."""
    if is_asyncio(client) and not asyncio:
        raise TypeError(
            f'{type(client).__module__}.{type(client).__name__} is an '
            f'asyncio client: use AsyncRedisStreamsManager (with '
            f'socketio.AsyncServer), or give RedisStreamsManager a sync '
            f'client')
    if asyncio and not is_asyncio(client):
        raise TypeError(
            f'{type(client).__module__}.{type(client).__name__} is a sync '
            f'client: AsyncRedisStreamsManager needs a redis.asyncio or '
            f'valkey.asyncio one; use RedisStreamsManager for a sync client')


class Connector:
    """Builds every client the manager opens, from a URL or a client:
    ``redis.asyncio`` (``valkey.asyncio``) ones with ``asyncio=True``."""

    def __init__(self, url: str | None = None, client: Any = None,
                 redis_options: dict | None = None, asyncio: bool = False):
        self.redis_options = dict(redis_options or {})
        self._client = client
        self.asyncio = asyncio
        self.target: Target | None = None
        for name in FILE_OPTIONS:
            path = self.redis_options.get(name)
            if isinstance(path, str) and not os.path.isfile(path):
                raise ValueError(f'redis_options[{name!r}]: file {path!r} '
                                 f'does not exist')
        if client is None:
            if url is None:
                raise ValueError('give a Redis url or a client')
            self.target = parse_url(url)
        else:
            if not hasattr(client, 'execute_command'):
                raise ValueError(f'client must be a redis/valkey client, '
                                 f'got {client!r}')
            _check_world(client, asyncio)
        self.is_cluster = _is_cluster(client) or (
            self.target is not None and self.target.kind == 'cluster')

    def describe(self) -> str:
        """The server, for log lines (no credentials)."""
        if self.target is None:
            return repr(self._client)
        if self.target.kind == 'standalone':
            p = urlparse(self.target.url)
            return f'{p.scheme}://{p.hostname or ""}:{p.port or ""}{p.path}'
        hosts = ','.join(f'{h}:{p}' for h, p in self.target.hosts)
        return f'{self.target.kind} {hosts}'

    @property
    def is_unix(self) -> bool:
        """Whether the connections go through a unix socket."""
        if self.target is not None:
            return self.target.kind == 'standalone' and \
                self.target.url.startswith('unix:')
        pool = getattr(self._client, 'connection_pool', None)
        return 'Unix' in getattr(getattr(pool, 'connection_class', None),
                                 '__name__', '')

    def client(self) -> Any:
        """The shared command client (made once)."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def close(self, log: Callable[[str], Any] | None = None
              ) -> Awaitable[None] | None:
        """Close the shared client, if it was ever made (asyncio: returns
        what to await)."""
        if self._client is not None:
            return close_client(self._client, log)
        return None

    def new_client(self, **overrides: Any) -> Any:
        """A client with its own connections, e.g. for a blocking reader;
        replies are awaited ``COMMAND_TIMEOUT`` seconds unless
        redis_options or ``overrides`` give a ``socket_timeout``.
        A cluster client asks a seed for the slot map at once: if none
        answers, that is a ``ConnectionError`` like any other (an asyncio
        one asks when it is first used, or in ``initialize(client)``)."""
        kwargs = {**self.redis_options, **overrides}
        kwargs.setdefault('decode_responses', False)
        kwargs.setdefault('socket_connect_timeout', CONNECT_TIMEOUT)
        kwargs.setdefault('socket_timeout', COMMAND_TIMEOUT)
        kwargs.setdefault('socket_keepalive', True)
        kwargs.setdefault('socket_keepalive_options', KEEPALIVE)
        if self.is_unix:
            for key in _TCP_ONLY:
                kwargs.pop(key, None)
        try:
            return self._new_client(kwargs)
        except CLUSTER_ERRORS as exc:
            raise redis.exceptions.ConnectionError(
                f'Redis Cluster {self.describe()}: {exc}') from exc

    def _new_client(self, kwargs: dict) -> Any:
        # a cluster client retries a failed command itself (10 times by
        # default), reconnecting: ``cluster_retries=0`` leaves it to us
        # (a reader closed under its XREAD must end, not block again)
        retries = kwargs.pop('cluster_retries', None)
        if retries is not None and self.is_cluster and not self.asyncio:
            # (an asyncio task is cancelled instead)
            kwargs['cluster_retry'] = _no_retry(
                type(self._client) if self.target is None
                else self.target.library, retries)
        if self.target is None:
            return self._duplicate(self._client, kwargs)
        t = self.target
        lib = t.library
        if self.asyncio:  # the same names, in the asyncio package
            lib = importlib.import_module(f'{lib.__name__}.asyncio')
        if t.kind == 'standalone':
            return lib.Redis.from_url(t.url, **kwargs)
        if t.kind == 'sentinel':
            kwargs = {**t.kwargs, **kwargs}
            sentinel_kwargs = kwargs.pop('sentinel_kwargs', None)
            if sentinel_kwargs is None:
                sentinel_kwargs = _sentinel_kwargs(kwargs)
            sentinel = lib.sentinel.Sentinel(
                t.hosts, sentinel_kwargs=sentinel_kwargs, **kwargs)
            return sentinel.master_for(t.service, **kwargs)
        nodes = [lib.cluster.ClusterNode(h, p) for h, p in t.hosts]
        kwargs.pop('retry', None)  # per node, not the cluster's own
        if 'cluster_retry' in kwargs:
            kwargs['retry'] = kwargs.pop('cluster_retry')
        return cluster_class(lib)(
            startup_nodes=nodes, **{**t.kwargs, **kwargs})

    @staticmethod
    def _duplicate(client: Any, kwargs: dict) -> Any:
        """A sibling of a user's client with its own connection pool (a
        cluster client: seeded with every node it knows)."""
        if _is_cluster(client):
            # an asyncio client knows its startup nodes until it is used
            nodes = client.get_nodes() or \
                list(client.nodes_manager.startup_nodes.values())
            connection_kwargs, connection_class = _node_connection(client)
            node_kwargs = {k: v for k, v in connection_kwargs.items()
                           if k in _CLUSTER_KEEP}
            if 'SSL' in connection_class.__name__:
                node_kwargs['ssl'] = True
            node_kwargs.update(kwargs)
            node_kwargs.pop('retry', None)
            if 'cluster_retry' in node_kwargs:
                node_kwargs['retry'] = node_kwargs.pop('cluster_retry')
            node_class = type(nodes[0])
            return type(client)(startup_nodes=[
                node_class(n.host, n.port) for n in nodes], **node_kwargs)
        pool = client.connection_pool
        pkw = dict(pool.connection_kwargs)
        pkw.pop('retry', None)  # the client's retries, unless we say
        pkw.update(kwargs)
        if hasattr(pool, 'sentinel_manager'):
            return pool.sentinel_manager.master_for(pool.service_name, **pkw)
        new_pool = type(pool)(connection_class=pool.connection_class, **pkw)
        return type(client)(connection_pool=new_pool)


def _no_retry(library: Any, retries: int) -> Any:
    """A ``Retry`` of ``retries`` attempts, no backoff, from the client's
    library (redis-py or valkey-py)."""
    root = library.__module__.split('.')[0] if isinstance(library, type) \
        else library.__name__.split('.')[0]
    lib = importlib.import_module(root)
    return lib.retry.Retry(lib.backoff.NoBackoff(), retries)


#: what a copy of a user's cluster client keeps of its node connections
_CLUSTER_KEEP = frozenset({
    'username', 'password', 'credential_provider', 'socket_timeout',
    'socket_connect_timeout', 'socket_keepalive', 'socket_keepalive_options',
    'encoding', 'encoding_errors', 'decode_responses', 'client_name',
    'health_check_interval', 'protocol', 'ssl_keyfile', 'ssl_certfile',
    'ssl_cert_reqs', 'ssl_ca_certs', 'ssl_ca_path', 'ssl_ca_data',
    'ssl_check_hostname', 'ssl_password', 'ssl_min_version', 'ssl_ciphers'})


def _sentinel_kwargs(kwargs: dict) -> dict:
    """What the connections to the sentinels share with those to the
    master: timeouts and TLS. Credentials are the master's (as with
    python-socketio); sentinels that want their own take
    ``redis_options={'sentinel_kwargs': {...}}``."""
    return {k: v for k, v in kwargs.items()
            if k.startswith(('socket_', 'ssl'))}


def cluster_class(library: Any) -> Any:
    """``redis.cluster.RedisCluster`` or ``valkey.cluster.ValkeyCluster``."""
    module = library.cluster
    return getattr(module, 'RedisCluster', None) or module.ValkeyCluster


def _node_connection(cluster: Any) -> tuple[dict, type]:
    """The connection keyword arguments and class of a cluster's nodes."""
    if is_asyncio(cluster):
        kwargs = dict(cluster.get_connection_kwargs())
        return kwargs, kwargs.pop('connection_class')
    pool = node_client(cluster, cluster.get_default_node() or
                       cluster.get_nodes()[0]).connection_pool
    return pool.connection_kwargs, pool.connection_class


def node_client(cluster: Any, node: Any) -> Any:
    """What runs a command on one node of a redis-py or valkey-py cluster,
    no retries: the node's plain client (asyncio: the node itself, whose
    ``execute_command`` is a coroutine function)."""
    if is_asyncio(cluster):
        return node
    get = getattr(cluster, 'get_redis_connection', None) or \
        cluster.get_valkey_connection
    return get(node)


def _asyncio_node_client(node: Any, **overrides: Any) -> Any:
    """A plain asyncio client (its own pool) of an asyncio cluster's
    ``node``, with the cluster's connection settings."""
    lib = importlib.import_module(
        f'{type(node).__module__.split(".")[0]}.asyncio')
    kwargs = {**node.connection_kwargs, **overrides}
    return lib.Redis(connection_pool=lib.ConnectionPool(
        connection_class=node.connection_class, **kwargs))


def initialize(client: Any) -> Steps[None]:
    """Steps that fetch an asyncio cluster client's slot map, if it has
    none yet (a sync one did when it was made; a ``ConnectionError`` if
    no seed answers)."""
    if is_asyncio(client) and _is_cluster(client) and not client.get_nodes():
        try:
            yield partial(client.initialize)
        except CLUSTER_ERRORS as exc:
            raise redis.exceptions.ConnectionError(
                f'Redis Cluster: {exc}') from exc


class Writer:
    """The publisher's connections. A command goes to the node that holds
    its key, over a plain connection with no retries hidden in the client:
    the publisher retries by itself and must see every failure, to check
    what the server kept before it writes anything else."""

    def __init__(self, connector: Connector):
        self._connector = connector
        self._router: Any = None  # a cluster client, for its slot map
        self._clients: dict[str, Any] = {}

    def ready(self) -> Steps[None]:
        """Steps to take before ``node()``: an asyncio cluster client
        learns its slot map here (a sync one when it is made)."""
        if self._connector.is_cluster:
            yield from initialize(self._route())

    def _route(self) -> Any:
        if self._router is None:
            self._router = self._connector.new_client()
        return self._router

    def node(self, key: str | None) -> str:
        """The name of the node that serves ``key`` (None: any node); ''
        when there is one server."""
        if not self._connector.is_cluster:
            return ''
        router = self._route()
        if key is None:
            # none before an asyncio client's ready()
            found = router.get_default_node() or next(
                iter(router.get_primaries()), None)
        else:
            found = router.get_node_from_key(key)
        if found is None:
            raise redis.exceptions.ConnectionError(
                f'no node serves {key!r} yet')
        return str(found.name)

    def route(self, batch: list) -> tuple[Any, list]:
        """The client to send to, and the head of ``batch`` that it serves
        (all of it, but on a cluster whose keys live on several nodes)."""
        node = None
        for i, item in enumerate(batch):
            key = item.key
            if key is None:
                continue
            where = self.node(key)
            if node is None:
                node = where
            elif where != node:
                batch = batch[:i]
                break
        if node is None:
            node = self.node(None)
        return self.client(node), batch

    def made(self, key: str | None) -> Any:
        """The client made already for the node of ``key``; None if there
        is none yet, or where the key lives is not known without I/O."""
        if self._connector.is_cluster and self._router is None:
            return None
        try:
            return self._clients.get(self.node(key))
        except Exception:
            return None

    def client(self, node: str) -> Any:
        """A client of ``node`` (a name from ``node()``)."""
        if node not in self._clients:
            if not node:
                made = self._connector.new_client(retry=None)
            else:
                found = self._router.get_node(node_name=node)
                if is_asyncio(found):
                    made = _asyncio_node_client(found, retry=None)
                else:
                    made = Connector._duplicate(
                        node_client(self._router, found), {'retry': None})
            self._clients[node] = made
        return self._clients[node]

    def reset(self) -> Awaitable[None] | None:
        """Drop connections and the slot map: ask again next time. For
        asyncio clients, returns what to await to close them (steps:
        ``yield writer.reset``)."""
        clients, self._clients = self._clients, {}
        router, self._router = self._router, None
        closing = [close_client(client) for client in
                   [*clients.values(), router] if client is not None]
        waits = [c for c in closing if c is not None]
        return _each(waits) if waits else None


def close_client(client: Any, log: Callable[[str], Any] | None = None
                 ) -> Awaitable[None] | None:
    """Close a client's connections, even those in use by another task;
    for an asyncio client, returns the coroutine that does."""
    if is_asyncio(client):
        return _aclose(client, log)
    try:
        if _is_cluster(client):
            client.close()
        else:
            client.connection_pool.disconnect(inuse_connections=True)
        wake_closed_waiters()
    except Exception as exc:  # closing is best effort by nature
        _closing_failed(exc, log)
    return None


async def _each(awaitables: list) -> None:
    for awaitable in awaitables:
        await awaitable


async def _aclose(client: Any, log: Callable[[str], Any] | None) -> None:
    try:
        if _is_cluster(client):
            await client.aclose()
            return
        await client.aclose(close_connection_pool=True)
        sentinels = getattr(client.connection_pool, 'sentinel_manager', None)
        for sentinel in getattr(sentinels, 'sentinels', ()):
            # shared by the clients of one Sentinel: the idle ones only
            await sentinel.connection_pool.disconnect(
                inuse_connections=False)
    except Exception as exc:  # closing is best effort by nature
        _closing_failed(exc, log)


def _closing_failed(exc: Exception, log: Callable[[str], Any] | None
                    ) -> None:
    if log:
        log(f'while closing a Redis client: {exc!r}')
