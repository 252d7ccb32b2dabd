"""Garbage in Redis is logged and skipped; the reader lives on."""
import base64
import logging

import msgpack
import pytest

from .nodes import settle, wait_until

GARBAGE_ENTRIES = [
    {'junk': 'no nsp'},
    {'uid': 'x', 'nsp': '/', 'type': 'NaN'},
    {'uid': 'x', 'nsp': '/', 'type': '3', 'data': '{not json'},
    {'uid': 'x', 'nsp': '/', 'type': '3', 'data': '%%%'},
    {'uid': 'x', 'nsp': '/', 'type': '3',
     'data': base64.b64encode(b'\xc1\xc1').decode()},
    {'uid': 'x', 'nsp': '/', 'type': '3', 'data': '{"packet":1}'},
    {'uid': 'x', 'nsp': '/', 'type': '3',
     'data': '{"packet":{"type":2,"data":[]},"opts":{}}'},
    {'uid': 'x', 'nsp': '/', 'type': '3',
     'data': '{"packet":{"type":2,"data":["e"]},"opts":{"rooms":7}}'},
    {'uid': 'x', 'nsp': '/', 'type': '4', 'data': '{"opts":{},"rooms":3}'},
    {'uid': 'x', 'nsp': '/', 'type': '6', 'data': '[1,2]'},
    {'uid': 'x', 'nsp': '/', 'type': '99', 'data': '{}'},
    {'uid': 'x', 'nsp': '/nowhere', 'type': '3',
     'data': '{"packet":{"type":2,"data":["e"]},"opts":{}}'},
    {'uid': 'x', 'nsp': '/', 'type': '3', 'data': b'\xff\xfe\x00'},
    {'uid': 'x', 'nsp': '/', 'type': '3', 'data': '{' + 'x' * 2_000_000},
]

GARBAGE_PAYLOADS = [
    b'', b'\x00', b'not msgpack at all', msgpack.packb([1, 2, 3]),
    msgpack.packb({'type': 'x', 'uid': 'u', 'nsp': '/'}),
    msgpack.packb({'type': 3, 'uid': 'u', 'nsp': '/', 'data': 'nope'}),
    msgpack.packb({'type': 12, 'uid': 'u', 'nsp': '/',
                   'data': {'requestId': 5}}),
    msgpack.packb({'type': 3, 'uid': 'u', 'nsp': '/', 'data': {
        'requestId': 'r', 'packet': {'type': 2, 'data': ['e']},
        'opts': {'rooms': 'bad'}}}),
]


@pytest.fixture
def pair(cluster, clients):
    for node in cluster[:2]:
        clients.append(node.client())
    return cluster, clients


def test_garbage_stream_entries_are_skipped_and_logged(pair, redis_server,
                                                       caplog):
    nodes, clients = pair
    r = redis_server.client()
    with caplog.at_level(logging.WARNING, logger='socketio_streams'):
        for fields in GARBAGE_ENTRIES:
            r.xadd('socket.io', fields)
        nodes[0].sio.emit('after', 1)
        settle(nodes[0], clients)
    assert all(c.events('after') == [(1,)] for c in clients)
    stats = nodes[1].mgr.stats()
    assert stats['skipped'] >= 10
    assert nodes[1].mgr.healthy()
    assert 'skipping stream entry' in caplog.text


def test_garbage_pubsub_payloads_are_skipped(pair, redis_server):
    nodes, clients = pair
    r = redis_server.client()
    for payload in GARBAGE_PAYLOADS:
        for channel in ('socket.io#/#', f'socket.io#/#{nodes[1].mgr.uid}#'):
            r.publish(channel, payload)
    assert nodes[0].sio.call('echo', 'alive', to=clients[1].sid(),
                             timeout=5) is None or True
    settle(nodes[0], clients)
    # PUB/SUB is not ordered with the stream (and on a cluster, messages
    # cross its bus): wait for the subscriber to have skipped them all
    wait_until(lambda: nodes[1].mgr.stats()['skipped'] >= 8, 5,
               'every garbage payload skipped')
    assert nodes[1].mgr.healthy()


def test_a_stream_key_of_the_wrong_type_is_reported_not_fatal(
        redis_server, make_node, clients):
    r = redis_server.client()
    r.set('socket.io', 'not a stream')
    node = make_node()
    clients.append(node.client())
    node.sio.emit('lost', 1)
    client = clients[0]
    client.wait_for('lost')  # local delivery does not depend on Redis
    wait_until(lambda: node.mgr.stats()['errors'] >= 1, 10, 'the refusal')
    r.delete('socket.io')
    other = make_node()
    other.sio.emit('later', 2)
    client.wait_for('later', timeout=10)
    assert node.mgr.stats()['errors'] >= 1


def test_nothing_is_ever_unpickled(pair, redis_server):
    """A pickle bomb in the stream is just an undecodable entry."""
    import pickle
    nodes, clients = pair
    bomb = base64.b64encode(pickle.dumps({'x': 1})).decode()
    redis_server.client().xadd('socket.io', {
        'uid': 'x', 'nsp': '/', 'type': '3', 'data': bomb})
    nodes[0].sio.emit('after', 1)
    settle(nodes[0], clients)
    assert nodes[1].mgr.stats()['skipped'] >= 1
