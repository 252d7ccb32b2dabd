"""A URL -> what to connect to (:class:`Target`): the kind of deployment
(standalone, Sentinel, Cluster), the client library (redis-py or
valkey-py), hosts, credentials and TLS settings. No I/O."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlparse

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
FILE_OPTIONS = ('ssl_ca_certs', 'ssl_certfile', 'ssl_keyfile')


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
        if name in FILE_OPTIONS and not os.path.isfile(value):
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
