"""Redis Cluster: three masters made with ``redis-cli --cluster create``.

The whole suite also runs against a cluster in this env (tox -e
py311-cluster); these tests are about what only a cluster does: keys on
several nodes, failovers and resharding.
"""
from __future__ import annotations

import time

import pytest
import redis.cluster

from socketio_streams import RedisStreamsManager, protocol
from socketio_streams import items as items_module

from .deployments import (ClusterProcess, assert_serving,
                          assert_unreplicated_resent, client_libraries,
                          lose_unreplicated, only_in, steady_broadcast,
                          wait_for)
from .async_nodes import AsyncNode
from .nodes import (MANAGER, NAMESPACES, Node, SyncNode, client_library,
                    wait_until)

pytestmark = only_in('cluster')


@pytest.fixture
def redis_cluster(tmp_path):
    """Three masters, no replicas."""
    made = ClusterProcess(str(tmp_path / 'cluster')).start()
    yield made
    made.stop()


@pytest.fixture
def replicated(tmp_path):
    """Three masters with a replica each: a killed master fails over."""
    made = ClusterProcess(str(tmp_path / 'cluster'), replicas=1).start()
    yield made
    made.stop()


def _xread_clients(cluster: ClusterProcess) -> dict[int, int]:
    """Port -> connections blocked in XREAD on that node."""
    return {n.port: sum(1 for c in n.client().client_list()
                        if c['cmd'] == 'xread' and 'b' in c['flags'])
            for n in cluster.alive()}


def test_a_cluster_url_and_a_passed_cluster_client_both_work(
        redis_cluster, nodes, clients, emitters):
    """Servers made from a ``redis+cluster://`` URL and from a
    ``redis.RedisCluster`` client form one cluster with an emitter made
    from a client."""
    seed = {'host': '127.0.0.1', 'port': redis_cluster.nodes[1].port}
    nodes.append(Node(redis_cluster.url))
    nodes.append(Node(None, client=client_library().cluster.RedisCluster(
        **seed)))
    emitters.append(RedisStreamsManager(
        client=redis.cluster.RedisCluster(**seed), write_only=True))
    clients.extend(node.client(namespaces=['/', '/chat']) for node in nodes)
    nodes[0].sio.emit('from-url', 1, namespace='/chat')
    nodes[1].sio.emit('from-client', 2)
    emitters[0].emit('from-emitter', 3)
    for c in clients:
        c.wait_for('from-url', namespace='/chat')
        c.wait_for('from-client')
        c.wait_for('from-emitter')
    assert nodes[0].mgr.server_count() == 2
    assert len(nodes[1].mgr.fetch_sockets(namespace='/chat')) == 2
    assert client_libraries(nodes[0].mgr) == {'redis'}


def test_an_async_server_subscribes_on_a_cluster(redis_cluster, nodes,
                                                 clients):
    """An AsyncRedisStreamsManager's subscriber (redis.asyncio's cluster
    pubsub, which needs the slot map first) answers and gets answers, in
    whichever env (a sync server beside it)."""
    nodes.append(AsyncNode(redis_cluster.url, NAMESPACES))
    nodes.append(SyncNode(redis_cluster.url))
    clients.extend(node.client() for node in nodes)
    assert nodes[0].mgr.server_count() == nodes[1].mgr.server_count() == 2
    assert len(nodes[0].mgr.fetch_sockets()) == 2


def test_each_stream_has_one_reader_on_the_node_that_holds_it(
        redis_cluster, nodes, clients, emitters):
    """``stream_count=3`` puts '/' and '/chat' on streams of two masters;
    a server reads each with one connection, blocked on its node."""
    root, chat = (protocol.stream_key('socket.io', 3, ns)
                  for ns in ('/', '/chat'))
    homes = {redis_cluster.master_of(root).port,
             redis_cluster.master_of(chat).port}
    assert root != chat and len(homes) == 2
    nodes.append(Node(redis_cluster.url, stream_count=3))
    clients.append(nodes[0].client(namespaces=['/', '/chat']))
    expected = {n.port: 1 if n.port in homes else 0
                for n in redis_cluster.alive()}
    wait_until(lambda: _xread_clients(redis_cluster) == expected, 10,
               f'one blocked XREAD on each of {sorted(homes)}')
    emitters.append(RedisStreamsManager(redis_cluster.url, write_only=True,
                                        stream_count=3))
    for ns in ('/', '/chat'):
        emitters[0].emit('hello', ns, namespace=ns)
        clients[0].wait_for('hello', namespace=ns)
    r = redis_cluster.client()
    assert r.xlen(root) == 1 and r.xlen(chat) == 1
    assert not r.exists('socket.io')


def test_server_count_sums_subscribers_over_every_node(redis_cluster,
                                                       nodes, clients):
    """PUB/SUB subscriptions are per node: a subscriber of the public
    channel on another node than ours counts too."""
    nodes.extend(Node(redis_cluster.url) for _ in range(3))
    clients.extend(node.client() for node in nodes)
    assert nodes[0].mgr.server_count() == 3
    channel = protocol.public_channel('socket.io', '/')
    home = redis_cluster.master_of(channel)
    elsewhere = next(n for n in redis_cluster.masters() if n is not home)
    foreign = elsewhere.client().pubsub()
    foreign.subscribe(channel)
    try:
        wait_until(lambda: nodes[0].mgr.server_count() == 4, 5,
                   'the subscriber on another node counted')
    finally:
        foreign.close()


def test_a_master_killed_mid_broadcast_costs_a_reconnect_not_packets(
        replicated, nodes, clients, emitters):
    """A master dies while three publishers emit 100 packets/s each; its
    replica is promoted. Nothing is lost or duplicated, requests work
    again, and the readers are healthy."""
    run = steady_broadcast(replicated.url, nodes, clients, emitters)
    promoted = replicated.kill_master('socket.io')
    run.wait_sent(400, 20)
    result = run.tally(clients)
    print(f'\ncluster failover: {result.line()}; reconnects '
          f'{sum(n.mgr.stats()["reconnects"] for n in nodes)}, resent '
          f'{run.resent()}')
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)
    assert replicated.master_of('socket.io') is promoted
    assert_serving(nodes)


@pytest.mark.parametrize('resend', [True, False], ids=['resend', 'control'])
def test_writes_the_dying_master_never_replicated_are_written_again(
        replicated, nodes, clients, emitters, monkeypatch, resend):
    """The master acknowledges entries its replica never gets, dies, and
    the replica is promoted: publishers write those entries again, so the
    stream holds every packet and no client loses or doubles one. The
    control run (nothing kept for re-sending) shows the hole it closes."""
    if not resend:
        monkeypatch.setattr(items_module, 'RECENT_MAX', 0)
    run = steady_broadcast(replicated.url, nodes, clients, emitters)
    master = replicated.master_of('socket.io')
    lose_unreplicated(master, replicated.replica_of(master),
                      lambda: time.sleep(0.5))
    replicated.kill_master('socket.io', kill=False)
    run.wait_sent(400, 20)
    assert_unreplicated_resent(run, clients, replicated.client(), resend,
                               'cluster')


def test_resharding_the_stream_slot_mid_broadcast_loses_nothing(
        redis_cluster, nodes, clients, emitters):
    """The slot of the stream moves to another master (keys included)
    while three publishers emit: readers follow it, nothing is lost,
    duplicated or reordered, and every server stays healthy."""
    run = steady_broadcast(redis_cluster.url, nodes, clients, emitters)
    source = redis_cluster.master_of('socket.io')
    target = next(n for n in redis_cluster.masters() if n is not source)
    redis_cluster.move_slot('socket.io', target)
    assert redis_cluster.master_of('socket.io') is target
    run.wait_sent(300, 20)
    result = run.tally(clients)
    print(f'\nresharding: {result.line()}')
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)
    wait_for(lambda: _xread_clients(redis_cluster)[target.port] == 3, 15,
             'the readers on the new node')
    assert _xread_clients(redis_cluster)[source.port] == 0
    assert all(n.mgr.healthy() for n in nodes)


@pytest.mark.skipif(MANAGER == 'asyncio', reason="valkey-py's asyncio "
                    "ValkeyCluster has no pubsub(): the asyncio manager's "
                    "subscriber cannot subscribe (no requests/replies)")
def test_valkey_cluster_urls_use_the_valkey_cluster_client(
        redis_cluster, nodes, clients):
    """``valkey+cluster://`` URLs: valkey-py's ``ValkeyCluster`` on every
    connection, sharded PUB/SUB included."""
    pytest.importorskip('valkey')
    url = redis_cluster.url.replace('redis+', 'valkey+', 1)
    nodes.extend(Node(url, use_sharded_pubsub=True) for _ in range(2))
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('hi', 1)
    clients[1].wait_for('hi')
    assert nodes[1].mgr.server_count() == 2
    assert len(nodes[1].mgr.fetch_sockets()) == 2
    for node in nodes:
        assert client_libraries(node.mgr) == {'valkey'}
        assert type(node.mgr._connector.client()).__name__ == \
            'ValkeyCluster'


@pytest.mark.skipif(MANAGER == 'asyncio', reason="valkey-py's asyncio "
                    "ValkeyCluster has no pubsub(): the asyncio manager "
                    "refuses it")
def test_connection_state_recovery_with_the_valkey_cluster_client(
        redis_cluster, nodes):
    """A dropped client comes back with its sid and what another server
    sent meanwhile, through valkey-py's cluster client (which has no
    MULTI): sessions and replays need no transaction."""
    pytest.importorskip('valkey')
    from .nodejs import NodeClient, NodeUnavailable, npm_ready
    try:
        npm_ready()
    except NodeUnavailable as exc:  # pragma: no cover - node is in the CI
        pytest.skip(str(exc))
    url = redis_cluster.url.replace('redis+', 'valkey+', 1)
    nodes.extend(Node(url, connection_state_recovery=True) for _ in range(2))
    client = NodeClient(nodes[0].url)
    try:
        nodes[0].sio.emit('warmup', 0)
        client.wait_for('warmup')
        sid = client.sid
        client.command('close_transport')
        client.wait_for('disconnect')
        nodes[1].sio.emit('missed', 1)
        assert nodes[1].mgr.flush()
        client.wait_for('missed', timeout=10)
        assert client.events('connect')[-1]['recovered'] is True
        assert client.sid == sid
    finally:
        client.stop()
