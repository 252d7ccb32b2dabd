"""URL or client -> the Redis clients the manager uses; nothing else does.

The manager needs one client for commands (publisher, requests) and
dedicated connections for each blocking reader and for the subscriber, so
that a ``XREAD BLOCK`` never holds up a write. ``Connector`` builds them all
from one description, so credentials and TLS settings apply everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlparse

import redis.exceptions

from .runtime import wake_closed_waiters

#: errors of a connection (retry), and error replies, in either client
RETRYABLE: tuple = (redis.exceptions.ConnectionError,
                    redis.exceptions.TimeoutError, OSError)
RESPONSE_ERRORS: tuple = (redis.exceptions.ResponseError,)
try:  # the valkey client has its own exception tree
    import valkey.exceptions
    RETRYABLE += (valkey.exceptions.ConnectionError,
                  valkey.exceptions.TimeoutError)
    RESPONSE_ERRORS += (valkey.exceptions.ResponseError,)
except ImportError:  # pragma: no cover - valkey is optional
    pass

#: seconds to open a connection, unless redis_options say otherwise
CONNECT_TIMEOUT = 5.0
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
        return Target('standalone', lib, url=url)
    if scheme in _SENTINEL:
        parts = [p for p in parsed.path.split('/') if p]
        kwargs = _credentials(parsed)
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
        kwargs = _credentials(parsed)
        kwargs.update(parse_qsl(parsed.query))
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

    def client(self) -> Any:
        """The shared command client (made once)."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self, **overrides: Any) -> Any:
        """A client with its own connections, e.g. for a blocking reader."""
        kwargs = {**self.redis_options, **overrides}
        kwargs.setdefault('decode_responses', False)
        kwargs.setdefault('socket_connect_timeout', CONNECT_TIMEOUT)
        if self.target is None:
            return self._duplicate(self._client, kwargs)
        t = self.target
        if t.kind == 'standalone':
            return t.library.Redis.from_url(t.url, **kwargs)
        if t.kind == 'sentinel':
            sentinel = t.library.sentinel.Sentinel(
                t.hosts, sentinel_kwargs=self._sentinel_kwargs(t),
                **{**t.kwargs, **kwargs})
            return sentinel.master_for(t.service, **{**t.kwargs, **kwargs})
        nodes = [t.library.cluster.ClusterNode(h, p) for h, p in t.hosts]
        return t.library.cluster.RedisCluster(
            startup_nodes=nodes, **{**t.kwargs, **kwargs})

    def _sentinel_kwargs(self, target: Target) -> dict:
        keep = ('username', 'password', 'ssl', 'ssl_ca_certs',
                'socket_timeout', 'socket_connect_timeout')
        return {k: v for k, v in {**target.kwargs,
                                  **self.redis_options}.items() if k in keep}

    @staticmethod
    def _duplicate(client: Any, kwargs: dict) -> Any:
        """A sibling of a user's client with its own connection pool."""
        if hasattr(client, 'get_nodes'):
            seed = client.get_default_node() or client.get_nodes()[0]
            node_kwargs = dict(seed.redis_connection.connection_pool
                               .connection_kwargs)
            for key in ('host', 'port', 'connection_pool', 'retry',
                        'redis_connect_func', 'connection_class'):
                node_kwargs.pop(key, None)
            node_kwargs.update(kwargs)
            return type(client)(host=seed.host, port=seed.port,
                                **node_kwargs)
        pool = client.connection_pool
        if hasattr(pool, 'sentinel_manager'):
            pkw = dict(pool.connection_kwargs)
            pkw.update(kwargs)
            return pool.sentinel_manager.master_for(pool.service_name, **pkw)
        pkw = dict(pool.connection_kwargs)
        pkw.update(kwargs)
        for key in ('retry',):
            pkw.pop(key, None)
        new_pool = type(pool)(connection_class=pool.connection_class, **pkw)
        return type(client)(connection_pool=new_pool)


def close_client(client: Any, log: Callable[[str], Any] | None = None) -> None:
    """Close a client's connections, even those in use by another task."""
    try:
        if hasattr(client, 'get_nodes'):
            client.close()
        else:
            client.connection_pool.disconnect(inuse_connections=True)
        wake_closed_waiters()
    except Exception as exc:  # closing is best effort by nature
        if log:
            log(f'while closing a Redis client: {exc!r}')


def _each_node(client: Any) -> list:
    """The clients to ask for per-node facts (every node of a cluster)."""
    if hasattr(client, 'get_nodes'):
        return [node.redis_connection or client.get_redis_connection(node)
                for node in client.get_nodes()]
    return [client]


def numsub(client: Any, channel: str, sharded: bool = False) -> int:
    """Subscribers of ``channel`` (``PUBSUB [SHARD]NUMSUB``), summed over
    the nodes of a cluster."""
    command = ('PUBSUB', 'SHARDNUMSUB' if sharded else 'NUMSUB', channel)
    total = 0
    for node in _each_node(client):
        reply = node.execute_command(*command)
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
    for node in _each_node(client):
        for name in node.execute_command(*command) or ():
            found.add(name.decode() if isinstance(name, bytes) else name)
    return found
