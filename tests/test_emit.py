"""Emits cross servers as with socketio.RedisManager: same call sites."""
import pytest

from .deployments import DEPLOYMENT
from .nodes import Node, settle
from .servers import RedisProcess


@pytest.fixture
def trio(cluster, clients):
    """One client on each of three servers."""
    for node in cluster:
        clients.append(node.client())
    return cluster, clients


def test_broadcast_reaches_every_client_once_including_local(trio):
    nodes, clients = trio
    nodes[0].sio.emit('news', {'n': 1})
    settle(nodes[0], clients)
    for client in clients:
        assert client.events('news') == [({'n': 1},)]


def test_every_server_can_broadcast(trio):
    nodes, clients = trio
    for i, node in enumerate(nodes):
        node.sio.emit('from', i)
        settle(node, clients)
    for client in clients:
        assert sorted(client.events('from')) == [(0,), (1,), (2,)]


def test_room_member_on_another_server_gets_it_non_member_does_not(trio):
    nodes, clients = trio
    clients[1].sio.call('join', 'red')
    nodes[0].sio.emit('color', 'red', to='red')
    settle(nodes[0], clients)
    assert clients[1].events('color') == [('red',)]
    assert clients[0].events('color') == clients[2].events('color') == []


def test_list_of_rooms_delivers_once_to_members_of_any(trio):
    nodes, clients = trio
    clients[0].sio.call('join', 'a')
    clients[1].sio.call('join', 'a')
    clients[1].sio.call('join', 'b')
    nodes[2].sio.emit('multi', 1, to=['a', 'b'])
    settle(nodes[2], clients)
    assert clients[0].events('multi') == [(1,)]
    assert clients[1].events('multi') == [(1,)]
    assert clients[2].events('multi') == []


def test_skip_sid_one_remote_client(trio):
    nodes, clients = trio
    nodes[0].sio.emit('most', 1, skip_sid=clients[2].sid())
    settle(nodes[0], clients)
    assert [len(c.events('most')) for c in clients] == [1, 1, 0]


def test_skip_sid_list_of_local_and_remote_clients(trio):
    nodes, clients = trio
    nodes[0].sio.emit('few', 1,
                      skip_sid=[clients[0].sid(), clients[1].sid()])
    settle(nodes[0], clients)
    assert [len(c.events('few')) for c in clients] == [0, 0, 1]


def test_sid_as_room_reaches_a_single_remote_client(trio):
    nodes, clients = trio
    nodes[0].sio.emit('private', 'hi', to=clients[2].sid())
    settle(nodes[0], clients)
    assert [c.events('private') for c in clients] == [[], [], [('hi',)]]


def test_namespaces_are_kept_apart(cluster, clients):
    chat = cluster[1].client(namespaces=['/', '/chat'])
    root = cluster[2].client()
    clients.extend([chat, root])
    cluster[0].sio.emit('talk', 'hello', namespace='/chat')
    chat.wait_for('talk', namespace='/chat')
    settle(cluster[0], clients)
    assert chat.events('talk') == root.events('talk') == []
    assert chat.events('talk', namespace='/chat') == [('hello',)]


#: what a handler gets for each emitted payload
PAYLOADS = [
    (b'\x00\xffbytes', (b'\x00\xffbytes',)),
    ({'nested': [1, {'deep': b'\x01\x02'}], 'text': 'é'},
     ({'nested': [1, {'deep': b'\x01\x02'}], 'text': 'é'},)),
    (('several', b'\x03', 3), ('several', b'\x03', 3)),
    ([1, 2], ([1, 2],)),
    (None, ()),
]


def test_payloads_arrive_intact_locally_and_remotely(trio):
    nodes, clients = trio
    for data, _expected in PAYLOADS:
        nodes[1].sio.emit('payload', data)
    settle(nodes[1], clients)
    for client in clients:
        assert client.events('payload') == [e for _d, e in PAYLOADS]


def test_emits_from_one_server_keep_their_order(trio):
    nodes, clients = trio
    for i in range(200):
        nodes[0].sio.emit('seq', i)
    settle(nodes[0], clients)
    for client in clients:
        assert client.events('seq') == [(i,) for i in range(200)]


def test_ignore_queue_stays_local(trio):
    nodes, clients = trio
    nodes[0].sio.emit('local-only', 1, ignore_queue=True)
    settle(nodes[0], clients)
    assert [len(c.events('local-only')) for c in clients] == [1, 0, 0]


def test_a_burst_is_batched_into_few_round_trips(redis_server, make_node,
                                                 clients):
    node = make_node()
    clients.append(node.client())
    before = redis_server.client().info('stats')['total_commands_processed']
    node.at_once(lambda: [node.sio.emit('burst', i) for i in range(1000)])
    settle(node, clients)
    assert node.mgr.flush(10)  # local clients do not wait for Redis
    after = redis_server.client().info('stats')['total_commands_processed']
    assert len(clients[0].events('burst')) == 1000
    # 1000 XADDs plus a handful of XREADs; no per-emit round trips beyond
    assert after - before < 1100
    assert node.mgr.stats()['published'] >= 1001


@pytest.fixture
def unix_server(tmp_path):
    """The ``unix://`` URL of a server listening on a unix socket."""
    path = str(tmp_path / 'redis.sock')
    server = RedisProcess(str(tmp_path / 'redis'), args=(
        '--unixsocket', path, '--unixsocketperm', '700')).start()
    yield f'unix://{path}'
    server.stop()


def test_a_unix_socket_url_serves_every_connection(unix_server, nodes,
                                                   clients):
    """``unix://``: the publisher, the readers and the subscriber all
    connect through the socket (TCP-only options are left out)."""
    nodes.extend([Node(unix_server), Node(unix_server)])
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('hi', 1)
    clients[1].wait_for('hi')
    assert len(nodes[1].mgr.fetch_sockets()) == 2
    assert all(node.mgr.healthy() for node in nodes)


@pytest.mark.skipif(DEPLOYMENT != 'standalone',
                    reason='a query string on a plain redis:// URL')
def test_a_resp3_connection_reads_and_writes_as_resp2_does(
        redis_server, nodes, clients):
    """``?protocol=3``: the replies the reader reads raw are RESP3 maps."""
    nodes.extend(Node(redis_server.url + '?protocol=3') for _ in range(2))
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('hi', {'a': b'\x01'})
    nodes[1].sio.emit('hu', 3)
    assert clients[1].wait_for('hi') == [({'a': b'\x01'},)]
    assert clients[0].wait_for('hu') == [(3,)]
    readers = [c for c in redis_server.client().client_list()
               if c.get('cmd') in ('xread', 'xreadgroup')]
    assert readers and all(c.get('resp') == '3' for c in readers), readers
    assert nodes[0].mgr.server_count() == 2
