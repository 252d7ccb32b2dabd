"""The ``valkey`` client behind ``valkey://`` URLs, on valkey-server.

The whole suite runs with ``valkey://`` URLs in this env (tox -e
py311-valkey-client); these tests check that the valkey client is the one
at work, on every connection, and that its errors are retried like
redis-py's.
"""
from __future__ import annotations

import pytest

from socketio_streams import RedisStreamsManager

from .chaos import Killer, Publisher, tally
from .deployments import only_in
from .nodes import Node, settle, wait_until

pytestmark = only_in('valkey-client')
valkey = pytest.importorskip('valkey')


def _libraries(server) -> dict[str, int]:
    """lib-name -> connections (CLIENT SETINFO, sent by both clients)."""
    found: dict[str, int] = {}
    for c in server.client().client_list():
        name = c.get('lib-name') or '?'
        found[name] = found.get(name, 0) + 1
    return found


def test_every_connection_of_a_valkey_url_uses_the_valkey_client(
        redis_server, nodes, clients):
    """Publisher, readers, subscriber and requests: valkey-py only."""
    assert redis_server.url.startswith('valkey://')
    nodes.extend(Node(redis_server.url, stream_count=3) for _ in range(2))
    clients.extend(n.client(namespaces=['/', '/chat']) for n in nodes)
    nodes[0].sio.emit('hi', 1, namespace='/chat')
    clients[1].wait_for('hi', namespace='/chat')
    assert nodes[1].mgr.server_count('/chat') == 2
    assert len(nodes[0].mgr.fetch_sockets()) == 2
    libraries = _libraries(redis_server)
    assert 'redis-py' not in libraries, libraries
    # per server: publisher, 2 readers, subscriber, requests (and ours)
    assert libraries['valkey-py'] >= 2 * 5


def test_a_passed_valkey_client_works(redis_server, nodes, clients):
    client = valkey.Valkey.from_url(redis_server.url)
    nodes.append(Node(redis_server.url))
    clients.append(nodes[0].client())
    mgr = RedisStreamsManager(client=client, write_only=True)
    mgr.emit('from-valkey', 1)
    mgr.close()
    clients[0].wait_for('from-valkey')


def test_valkey_errors_are_retried_nothing_lost(redis_server, nodes,
                                                clients):
    """Every connection killed every 100 ms for 3 s while a server emits
    100 packets/s: the valkey client's errors are retried like redis-py's
    and every packet arrives once, in order."""
    nodes.extend(Node(redis_server.url) for _ in range(2))
    clients.extend(node.client() for node in nodes)
    killer = Killer(lambda: redis_server.client(socket_timeout=2), 0.1)
    publisher = Publisher('A', lambda p: nodes[0].sio.emit('seq', list(p)),
                          3.0, 0.01)
    killer.start()
    publisher.start()
    publisher.join()
    killer.stop()
    wait_until(lambda: len(clients[1].events('seq')) >= publisher.sent, 30,
               'every packet')
    settle(nodes[0], clients)  # copies, if any, would come before it
    result = tally([[tuple(a[0]) for a in clients[1].events('seq')]],
                   {'A': publisher.sent})
    print(f'\nvalkey client under CLIENT KILL: {result.line()}; '
          f'{killer.kills} kills')
    assert killer.kills > 5 and not publisher.errors
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)
