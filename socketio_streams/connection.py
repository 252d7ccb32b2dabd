"""URL or client -> the Redis clients the manager uses; nothing else does.

The manager needs one client for commands (publisher, requests) and
dedicated connections for each blocking reader and for the subscriber, so
that a ``XREAD BLOCK`` never holds up a write. ``Connector`` builds them all
from one description, so credentials and TLS settings apply everywhere.
"""
from __future__ import annotations

import os
import socket
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlparse

import redis.exceptions

# what the stream tasks import from here (reader, publisher)
from .errors import (CLUSTER_ERRORS, REFUSED_LOCALLY,  # noqa: F401
                     RESPONSE_ERRORS, RETRYABLE, TRANSIENT, explain,
                     transient, why)
from .runtime import wake_closed_waiters
from .steps import Steps, done

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
_STANDALONE = {'redis', 'rediss', 'unix', 'valkey', 'valkeys'}
_SENTINEL = {'redis+sentinel', 'valkey+sentinel'}
_CLUSTER = {'redis+cluster', 'valkey+cluster'}


def _library(scheme: str):
    """The client library for a scheme: ``valkey`` if wanted and present."""
    if scheme.startswith('valkey'):
        try:
            import valkey
            return valkey
        except ImportError:
            pass
    import redis
    return redis


def _hosts(netloc: str, url: str) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rsplit('@', 1)[-1].split(','):
        host, sep, port = part.rpartition(':')
        if not sep or not host or not port.isdigit():
            raise ValueError(f'bad host:port {part!r} in Redis URL {url!r}')
        hosts.append((host.strip('[]'), int(port)))
    return hosts


def _credentials(parsed) -> dict:
    kwargs = {}
    if parsed.username:
        kwargs['username'] = unquote(parsed.username)
    if parsed.password:
        kwargs['password'] = unquote(parsed.password)
    return kwargs


#: types of the query arguments of sentinel and cluster URLs (standalone
#: URLs are parsed by the client library itself)
_QUERY_TYPES: dict[str, Callable[[str], Any]] = {
    'db': int, 'socket_timeout': float, 'socket_connect_timeout': float,
    'socket_keepalive': lambda v: _bool(v), 'ssl': lambda v: _bool(v),
    'ssl_check_hostname': lambda v: _bool(v), 'health_check_interval': int,
    'max_connections': int, 'protocol': int}
_FILES = ('ssl_ca_certs', 'ssl_certfile', 'ssl_keyfile')


def _bool(value: str) -> bool:
    return value.strip().lower() not in ('', '0', 'false', 'f', 'no', 'n',
                                         'off')


def _query(query: str, url: str) -> dict:
    """Typed keyword arguments from a URL's query; ``ValueError`` for a
    bad number or a certificate file that does not exist."""
    kwargs: dict[str, Any] = {}
    for name, value in parse_qsl(query):
        convert = _QUERY_TYPES.get(name, str)
        try:
            kwargs[name] = convert(value)
        except ValueError:
            raise ValueError(f'bad value {value!r} for {name} in Redis URL '
                             f'{url!r}') from None
        if name in _FILES and not os.path.isfile(value):
            raise ValueError(f'{name} file {value!r} (in Redis URL {url!r}) '
                             f'does not exist')
    return kwargs


@dataclass
class Target:
    """What to connect to: ``kind`` is standalone, sentinel or cluster."""
    kind: str
    library: Any
    url: str = ''
    hosts: list = field(default_factory=list)
    service: str = ''
    kwargs: dict = field(default_factory=dict)


def parse_url(url: str) -> Target:
    """Check a URL and describe it; ``ValueError`` names what is wrong."""
    if not isinstance(url, str) or '://' not in url:
        raise ValueError(f'Redis URL must look like redis://host:port/db, '
                         f'got {url!r}')
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    lib = _library(scheme)
    if scheme in _STANDALONE:
        if scheme.startswith('valkey') and lib.__name__ == 'redis':
            url = 'redis' + url[len('valkey'):]
        try:
            parsed.port  # noqa: B018  (raises on a non-numeric port)
        except ValueError:
            raise ValueError(f'bad port in Redis URL {url!r}') from None
        _query(parsed.query, url)  # checks the file names it gives
        return Target('standalone', lib, url=url)
    if scheme in _SENTINEL:
        parts = [p for p in parsed.path.split('/') if p]
        kwargs = {**_query(parsed.query, url), **_credentials(parsed)}
        if len(parts) == 1:
            service = parts[0]
        elif len(parts) == 2 and parts[0].isdigit():
            kwargs['db'] = int(parts[0])
            service = parts[1]
        else:
            raise ValueError('Sentinel URL must end with /<db>/<service> or '
                             f'/<service>, got {url!r}')
        return Target('sentinel', lib, hosts=_hosts(parsed.netloc, url),
                      service=service, kwargs=kwargs)
    if scheme in _CLUSTER:
        if parsed.path.strip('/') not in ('', '0'):
            raise ValueError(f'Redis Cluster has database 0 only; remove '
                             f'{parsed.path!r} from {url!r}')
        kwargs = {**_query(parsed.query, url), **_credentials(parsed)}
        return Target('cluster', lib, hosts=_hosts(parsed.netloc, url),
                      kwargs=kwargs)
    raise ValueError(f'unsupported Redis URL scheme {parsed.scheme!r} in '
                     f'{url!r}; use redis://, rediss://, unix://, valkey://, '
                     f'redis+sentinel:// or redis+cluster://')


class Connector:
    """Builds every client the manager opens, from a URL or a client."""

    def __init__(self, url: str | None = None, client: Any = None,
                 redis_options: dict | None = None):
        self.redis_options = dict(redis_options or {})
        self._client = client
        self.target: Target | None = None
        for name in _FILES:
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
        self.is_cluster = hasattr(client, 'get_nodes') or (
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

    def close(self, log: Callable[[str], Any] | None = None) -> None:
        """Close the shared client, if it was ever made."""
        if self._client is not None:
            close_client(self._client, log)

    def new_client(self, **overrides: Any) -> Any:
        """A client with its own connections, e.g. for a blocking reader;
        replies are awaited ``COMMAND_TIMEOUT`` seconds unless
        redis_options or ``overrides`` give a ``socket_timeout``.
        A cluster client asks a seed for the slot map at once: if none
        answers, that is a ``ConnectionError`` like any other."""
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
        if self.target is None:
            return self._duplicate(self._client, kwargs)
        t = self.target
        if t.kind == 'standalone':
            return t.library.Redis.from_url(t.url, **kwargs)
        if t.kind == 'sentinel':
            kwargs = {**t.kwargs, **kwargs}
            sentinel_kwargs = kwargs.pop('sentinel_kwargs', None)
            if sentinel_kwargs is None:
                sentinel_kwargs = _sentinel_kwargs(kwargs)
            sentinel = t.library.sentinel.Sentinel(
                t.hosts, sentinel_kwargs=sentinel_kwargs, **kwargs)
            return sentinel.master_for(t.service, **kwargs)
        nodes = [t.library.cluster.ClusterNode(h, p) for h, p in t.hosts]
        kwargs.pop('retry', None)  # per node, not the cluster's own
        return cluster_class(t.library)(
            startup_nodes=nodes, **{**t.kwargs, **kwargs})

    @staticmethod
    def _duplicate(client: Any, kwargs: dict) -> Any:
        """A sibling of a user's client with its own connection pool (a
        cluster client: seeded with every node it knows)."""
        if hasattr(client, 'get_nodes'):
            nodes = client.get_nodes()
            pool = node_client(
                client, client.get_default_node() or nodes[0]).connection_pool
            node_kwargs = {k: v for k, v in pool.connection_kwargs.items()
                           if k in _CLUSTER_KEEP}
            if 'SSL' in pool.connection_class.__name__:
                node_kwargs['ssl'] = True
            node_kwargs.update(kwargs)
            node_kwargs.pop('retry', None)
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


def node_client(cluster: Any, node: Any) -> Any:
    """The plain client of one node of a redis-py or valkey-py cluster."""
    get = getattr(cluster, 'get_redis_connection', None) or \
        cluster.get_valkey_connection
    return get(node)


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
        """Steps to take before ``node()``/``client()`` (none yet)."""
        return done()

    def node(self, key: str | None) -> str:
        """The name of the node that serves ``key`` (None: any node); ''
        when there is one server."""
        if not self._connector.is_cluster:
            return ''
        if self._router is None:
            self._router = self._connector.new_client()
        router = self._router
        if key is None:
            found = router.get_default_node() or router.get_primaries()[0]
        else:
            found = router.get_node_from_key(key)
        if found is None:
            raise redis.exceptions.ConnectionError(
                f'no node serves {key!r} yet')
        return str(found.name)

    def client(self, node: str) -> Any:
        """A client of ``node`` (a name from ``node()``)."""
        if node not in self._clients:
            if not node:
                made = self._connector.new_client(retry=None)
            else:
                found = self._router.get_node(node_name=node)
                made = Connector._duplicate(
                    node_client(self._router, found),
                    {'retry': None})
            self._clients[node] = made
        return self._clients[node]

    def reset(self) -> Steps[None]:
        """Drop connections and the slot map: ask again next time."""
        clients, self._clients = self._clients, {}
        router, self._router = self._router, None
        for client in [*clients.values(), router]:
            if client is not None:
                yield partial(close_client, client)


def close_client(client: Any, log: Callable[[str], Any] | None = None) -> Any:
    """Close a client's connections, even those in use by another task
    (an asyncio client's: the awaitable that does)."""
    if hasattr(client, 'aclose'):
        return _aclose(client, log)
    try:
        if hasattr(client, 'get_nodes'):
            client.close()
        else:
            client.connection_pool.disconnect(inuse_connections=True)
        wake_closed_waiters()
    except Exception as exc:  # closing is best effort by nature
        if log:
            log(f'while closing a Redis client: {exc!r}')


async def _aclose(client: Any, log: Callable[[str], Any] | None) -> None:
    try:
        await client.aclose()
    except Exception as exc:  # closing is best effort by nature
        if log:
            log(f'while closing a Redis client: {exc!r}')


def _on_each_node(client: Any, command: tuple) -> list:
    """``command``'s reply from each node of a cluster (those that cannot
    be reached have no subscribers: skipped, unless none can), or from the
    one server. A refused command raises an error that says why."""
    if not hasattr(client, 'get_nodes'):
        clients = [client]
    else:
        clients = [node_client(client, node)
                   for node in client.get_nodes()]
    replies, lost = [], None
    for node in clients:
        try:
            replies.append(node.execute_command(*command))
        except RETRYABLE as exc:
            lost = exc
        except RESPONSE_ERRORS as exc:
            raise type(exc)(explain(exc, ' '.join(command[:2]))) from exc
    if lost is not None and not replies:
        raise lost
    return replies


def numsub(client: Any, channel: str, sharded: bool = False) -> int:
    """Subscribers of ``channel`` (``PUBSUB [SHARD]NUMSUB``), summed over
    the nodes of a cluster."""
    command = ('PUBSUB', 'SHARDNUMSUB' if sharded else 'NUMSUB', channel)
    total = 0
    for reply in _on_each_node(client, command):
        if isinstance(reply, dict):
            reply = list(reply.items())
        elif reply and not isinstance(reply[0], (list, tuple)):
            reply = list(zip(reply[::2], reply[1::2]))
        total += sum(int(n) for _, n in reply)
    return total


def channels(client: Any, pattern: str, sharded: bool = False) -> set[str]:
    """Active channels matching ``pattern`` (``PUBSUB [SHARD]CHANNELS``),
    over every node of a cluster."""
    command = ('PUBSUB', 'SHARDCHANNELS' if sharded else 'CHANNELS', pattern)
    found: set[str] = set()
    for reply in _on_each_node(client, command):
        for name in reply or ():
            found.add(name.decode() if isinstance(name, bytes) else name)
    return found
