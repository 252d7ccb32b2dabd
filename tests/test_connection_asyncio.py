"""``Connector(..., asyncio=True)``: redis.asyncio / valkey.asyncio clients
of the same kind and settings as the sync ones, on a real server.

The tests on ``redis_server`` run against each deployment in its env
(standalone, valkey-client, tls, cluster, sentinel: tests/deployments.py).
"""
from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest
import redis
import redis.asyncio

from socketio_streams.connection import (COMMAND_TIMEOUT, KEEPALIVE,
                                         Connector, Writer, close_client,
                                         is_asyncio, node_client)
from socketio_streams.membership import channels, numsub
from socketio_streams.errors import CLUSTER_ERRORS, RESPONSE_ERRORS, RETRYABLE
from socketio_streams.protocol import as_text
from socketio_streams.steps import arun, run

from .deployments import DEPLOYMENT
from .servers import free_port
from .test_deploy_errors import ALL_KEYS, limited  # noqa: F401
from .test_emit import unix_server  # noqa: F401  (a fixture)


@pytest.fixture(params=['redis', 'valkey'])
def url(request, redis_server):
    """The deployment's URL, spelled for the redis client or for the
    valkey one (redis:// or valkey://, redis+cluster:// or
    valkey+cluster://...)."""
    if request.param == 'valkey':
        pytest.importorskip('valkey.asyncio')
    scheme, rest = redis_server.url.split('://', 1)
    scheme = scheme.replace('valkey', 'redis').replace('redis',
                                                       request.param)
    return f'{scheme}://{rest}'


def closing_cleanly(main: Any) -> list:
    """Run coroutine function ``main``; the ResourceWarnings (unclosed
    connections, clients, cluster nodes) that it left once collected
    (earlier tests' garbage collected first: not counted)."""
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ResourceWarning)
        asyncio.run(main())
        gc.collect()
    return [str(w.message) for w in caught
            if issubclass(w.category, ResourceWarning)]


def settings(client: Any) -> dict:
    """The connection keyword arguments of a client (a cluster's: its
    nodes')."""
    if hasattr(client, 'get_nodes'):
        if is_asyncio(client):
            return dict(client.get_connection_kwargs())
        client = node_client(client, client.get_default_node())
    return dict(client.connection_pool.connection_kwargs)


def kind(client: Any) -> tuple:
    """What makes two clients of the two worlds the same kind: library,
    cluster or not, pool and connection classes."""
    library = type(client).__module__.split('.')[0]
    if hasattr(client, 'get_nodes'):
        return library, 'cluster', settings(client).get('ssl_ca_certs')
    pool = client.connection_pool
    return (library, type(pool).__name__, pool.connection_class.__name__,
            settings(client).get('ssl_ca_certs'))


async def stream_round_trip(client: Any, key: str = 'conn-test') -> None:
    assert await client.ping()
    entry = await client.xadd(key, {'n': '1'})
    got = await client.xread({key: '0-0'}, count=10, block=100)
    assert got[0][1] == [(entry, {b'n': b'1'})]


def test_an_asyncio_client_from_the_url(url):
    """The same kind and settings as the sync client, pings, XADD/XREAD;
    close_client leaves nothing open."""
    connector = Connector(url, asyncio=True)
    sync = Connector(url).new_client()

    async def main():
        client = connector.new_client()
        assert is_asyncio(client)
        assert type(client).__module__.split('.')[0] == \
            ('valkey' if url.startswith('valkey') else 'redis')
        await stream_round_trip(client)
        assert kind(client) == kind(sync)
        made = settings(client)
        assert made['socket_timeout'] == COMMAND_TIMEOUT
        assert made['socket_keepalive_options'] == KEEPALIVE
        await close_client(client)
    assert closing_cleanly(main) == []
    close_client(sync)


def test_without_close_client_the_check_sees_unclosed_connections(
        redis_server):
    """The control of the test above: its check can fail."""
    async def main():
        client = Connector(redis_server.url, asyncio=True).new_client()
        await client.ping()
    assert closing_cleanly(main) != []


def test_redis_options_and_overrides_apply(redis_server):
    connector = Connector(redis_server.url, asyncio=True,
                          redis_options={'socket_timeout': 7,
                                         'client_name': 'conn-test'})

    async def main():
        client = connector.new_client(socket_connect_timeout=3)
        assert as_text(await client.client_getname()) == 'conn-test'
        made = settings(client)
        assert (made['socket_timeout'], made['socket_connect_timeout']) == \
            (7, 3)
        await close_client(client)
    assert closing_cleanly(main) == []


def test_a_unix_socket_url(unix_server):  # noqa: F811
    """Through the socket, without the TCP-only options."""
    connector = Connector(unix_server, asyncio=True)
    assert connector.is_unix

    async def main():
        client = connector.new_client()
        await stream_round_trip(client)
        assert client.connection_pool.connection_class.__name__ == \
            'UnixDomainSocketConnection'
        assert 'socket_keepalive' not in settings(client)
        await close_client(client)
    assert closing_cleanly(main) == []


@pytest.mark.parametrize('used', [False, True])
def test_a_given_asyncio_client_is_duplicated(url, used):
    """client= an asyncio client (of each deployment's kind; a cluster's
    knowing its startup nodes only, or every node): new clients are
    siblings with their own connections."""
    async def main():
        given = Connector(url, asyncio=True).new_client()
        if used:
            await given.ping()
        connector = Connector(client=given, asyncio=True)
        assert connector.client() is given
        copy = connector.new_client(socket_timeout=9)
        assert copy is not given and kind(copy) == kind(given)
        assert settings(copy)['socket_timeout'] == 9
        await stream_round_trip(copy)
        assert connector.is_cluster == hasattr(given, 'get_nodes')
        await close_client(copy)
        await connector.close()
    assert closing_cleanly(main) == []


@pytest.mark.skipif(DEPLOYMENT != 'standalone', reason='a plain server')
def test_a_given_valkey_asyncio_client_is_duplicated(redis_server):
    valkey_asyncio = pytest.importorskip('valkey.asyncio')

    async def main():
        given = valkey_asyncio.Valkey(host='127.0.0.1',
                                      port=redis_server.port)
        copy = Connector(client=given, asyncio=True).new_client()
        assert type(copy) is type(given)
        assert copy.connection_pool is not given.connection_pool
        await stream_round_trip(copy)
        await close_client(copy)
        await close_client(given)
    assert closing_cleanly(main) == []


def test_a_client_of_the_other_world_is_refused():
    sync = redis.Redis(port=1)
    aio = redis.asyncio.Redis(port=1)
    with pytest.raises(TypeError, match='use RedisStreamsManager'):
        Connector(client=sync, asyncio=True)
    with pytest.raises(TypeError, match='use AsyncRedisStreamsManager'):
        Connector(client=aio)
    assert not is_asyncio(sync)


def test_a_valkey_url_makes_a_valkey_asyncio_client():
    pytest.importorskip('valkey.asyncio')
    client = Connector('valkey://127.0.0.1:1/0', asyncio=True).new_client()
    assert type(client).__module__ == 'valkey.asyncio.client'
    assert is_asyncio(client)


def test_the_writer_routes_each_key_to_its_node(redis_server, url):
    """ready() then node()/client(): a pipeline of XADDs goes to the node
    that serves the key (a cluster's master: no MOVED; '' for one
    server), as the sync Writer routes it."""
    keys = [f'conn-key-{i}' for i in range(12)]
    writer = Writer(Connector(url, asyncio=True))
    sync_writer = Writer(Connector(url))
    run(sync_writer.ready())
    routes = {key: sync_writer.node(key) for key in keys}
    ports = {}

    async def main():
        await arun(writer.ready())
        for key in keys:
            node = writer.node(key)
            client = writer.client(node)
            assert is_asyncio(client) and node == routes[key]
            made = client.connection_pool.connection_kwargs
            ports[key] = made.get('port')
            assert made['retry'] is None  # the publisher sees each failure
            pipe = client.pipeline(transaction=False)
            pipe.xadd(key, {'k': key})
            pipe.xlen(key)
            entry, length = await pipe.execute(raise_on_error=False)
            assert isinstance(entry, bytes) and length == 1
        await writer.reset()
    assert closing_cleanly(main) == []
    sync_writer.reset()
    if DEPLOYMENT == 'cluster':
        cluster = redis_server.deployment
        assert ports == {k: cluster.master_of(k).port for k in keys}
        assert len(set(ports.values())) == len(cluster.masters())


@pytest.mark.parametrize('sharded', [False, True])
def test_numsub_and_channels_count_the_same_in_both_worlds(url, sharded):
    names = [f'conn#{i}#' for i in range(5)]
    sync = Connector(url).new_client()
    pubsub = sync.pubsub()
    for name in names:
        if sharded:
            pubsub.ssubscribe(name)
        else:
            pubsub.subscribe(name)
    assert run(numsub(sync, names[0], sharded)) == 1

    async def main():
        client = Connector(url, asyncio=True).new_client()
        for name in names:
            assert await arun(numsub(client, name, sharded)) == \
                run(numsub(sync, name, sharded)) == 1
        assert await arun(numsub(client, 'conn#none', sharded)) == 0
        found = await arun(channels(client, 'conn#*', sharded))
        assert found == run(channels(sync, 'conn#*', sharded)) == set(names)
        await close_client(client)
    try:
        assert closing_cleanly(main) == []
    finally:
        pubsub.close()
        close_client(sync)


def test_an_unreachable_cluster_is_a_connection_error():
    """As the sync client's at creation: ready() (or numsub) finds no
    seed answering."""
    port = free_port()
    connector = Connector(f'redis+cluster://127.0.0.1:{port}', asyncio=True)
    with pytest.raises(redis.exceptions.ConnectionError):
        Connector(f'redis+cluster://127.0.0.1:{port}').new_client()

    async def main():
        with pytest.raises(redis.exceptions.ConnectionError,
                           match='Redis Cluster'):
            await arun(Writer(connector).ready())
        client = connector.new_client()
        with pytest.raises(redis.exceptions.ConnectionError):
            await arun(numsub(client, 'conn#'))
        await close_client(client)
    assert closing_cleanly(main) == []


def test_a_refused_query_names_its_command_in_both_worlds(
        limited):  # noqa: F811
    url = limited(*ALL_KEYS, '-pubsub|channels')
    sync = Connector(url).new_client()
    with pytest.raises(RESPONSE_ERRORS, match='PUBSUB CHANNELS.*lacks'):
        run(channels(sync, 'conn#*'))
    close_client(sync)

    async def main():
        client = Connector(url, asyncio=True).new_client()
        with pytest.raises(RESPONSE_ERRORS, match='PUBSUB CHANNELS.*lacks'):
            await arun(channels(client, 'conn#*'))
        assert await arun(numsub(client, 'conn#')) == 0
        await close_client(client)
    assert closing_cleanly(main) == []


def test_before_ready_an_asyncio_cluster_has_no_route():
    """node() before ready(): a ConnectionError, which the publisher
    retries (after ready())."""
    writer = Writer(Connector('redis+cluster://127.0.0.1:1', asyncio=True))
    for key in ('conn-key', None):
        with pytest.raises(CLUSTER_ERRORS + RETRYABLE):
            writer.node(key)
