"""``use_sharded_pubsub=True``: every request and reply travels by
SPUBLISH/SSUBSCRIBE, never PUBLISH/SUBSCRIBE, on whatever
``redis_server`` is (a single server, or the cluster of tox -e
py311-cluster, where the streams and channels of ``stream_count=3`` live
on several masters)."""
from __future__ import annotations

import pytest

from .deployments import on_every_node, with_credentials
from .nodes import Node, wait_until


@pytest.fixture
def sharded_only(redis_server):
    """The URL of a user who may do anything but PUBLISH and SUBSCRIBE."""
    on_every_node(redis_server, 'ACL', 'SETUSER', 'sharded', 'on', '>pw',
                  '~*', '&*', '+@all', '-publish', '-subscribe')
    return with_credentials(redis_server.url, 'sharded', 'pw')


@pytest.mark.parametrize('stream_count', [1, 3])
def test_every_request_and_reply_goes_by_sharded_pubsub(
        sharded_only, nodes, clients, stream_count):
    """fetch_sockets, server_side_emit, emit_with_ack, callbacks and
    server_count work for a user who may not PUBLISH or SUBSCRIBE, with
    no error anywhere."""
    nodes.extend(Node(sharded_only, use_sharded_pubsub=True,
                      stream_count=stream_count) for _ in range(3))
    for node in nodes:
        clients.append(node.client(namespaces=['/', '/chat'],
                                   answers={'echo': lambda x: x}))
    for ns in ('/', '/chat'):
        assert nodes[0].mgr.server_count(ns) == 3
        assert len(nodes[0].mgr.fetch_sockets(namespace=ns)) == 3
        assert nodes[1].mgr.emit_with_ack('echo', ns, namespace=ns) == \
            [ns] * 3
    nodes[2].mgr.on('ping', lambda: 'pong')
    nodes[1].mgr.on('ping', lambda: 'pong')
    answers: list = []
    nodes[0].mgr.server_side_emit('ping', callback=lambda err, r: answers
                                  .append((err, r)))
    wait_until(lambda: answers == [(None, ['pong', 'pong'])], 5, 'answers')
    got: list = []
    nodes[0].sio.emit('echo', 'cb', to=clients[2].sid(),
                      callback=lambda *a: got.append(a))
    wait_until(lambda: got == [('cb',)], 5, 'the callback')
    for node in nodes:
        assert node.mgr.healthy()
        assert node.mgr.stats()['errors'] == 0


def test_the_same_user_without_sharded_pubsub_is_refused(sharded_only,
                                                         nodes, clients):
    """The check above can fail: plain PUB/SUB is refused to that user."""
    nodes.append(Node(sharded_only))
    clients.append(nodes[0].client())
    wait_until(lambda: not nodes[0].mgr.healthy(), 5, 'SUBSCRIBE refused')
