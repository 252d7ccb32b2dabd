"""Nothing lost, duplicated or reordered while Redis connections die."""
import time

import pytest

from socketio_streams import RedisStreamsManager

from .chaos import Killer, Publisher, tally
from .nodes import Node, wait_until
from .servers import RedisProcess

DURATION = 10.0
INTERVAL = 0.01


@pytest.fixture
def aof_server(tmp_path):
    server = RedisProcess(str(tmp_path / 'redis'),
                          args=('--appendonly', 'yes')).start()
    yield server
    server.stop()


def _cluster(url, clients_per_node=2):
    nodes = [Node(url) for _ in range(3)]
    clients = [node.client() for node in nodes
               for _ in range(clients_per_node)]
    return nodes, clients


def _received(clients):
    return [[tuple(args[0]) for args in c.events('seq')] for c in clients]


def _run(nodes, clients, url, during):
    """Three publishers (two servers and a write_only emitter) for
    DURATION seconds while ``during(elapsed)`` does damage."""
    emitter = RedisStreamsManager(url, write_only=True)
    publishers = [
        Publisher('A', lambda p: nodes[0].sio.emit('seq', list(p)), DURATION,
                  INTERVAL),
        Publisher('B', lambda p: nodes[1].sio.emit('seq', list(p)), DURATION,
                  INTERVAL),
        Publisher('W', lambda p: emitter.emit('seq', list(p)), DURATION,
                  INTERVAL),
    ]
    for p in publishers:
        p.start()
    start = time.monotonic()
    while any(p.is_alive() for p in publishers):
        during(time.monotonic() - start)
        time.sleep(0.05)
    emitter.close(timeout=30)
    expected = {p.name_: p.sent for p in publishers}
    total = sum(expected.values())
    try:
        wait_until(lambda: all(len(c.events('seq')) >= total
                               for c in clients), 60, 'every packet')
    except AssertionError:
        pass  # the tally says what is missing
    time.sleep(0.5)  # late duplicates would show up now
    assert not any(p.errors for p in publishers), \
        [p.errors[:3] for p in publishers]
    return tally(_received(clients), expected)


@pytest.mark.nodes  # through _cluster
def test_client_kill_storm_and_a_restart_lose_nothing(aof_server):
    """3 servers, 3 publishers at 100 packets/s each for 10 s; every Redis
    connection killed every 250 ms and Redis restarted once (AOF on)."""
    nodes, clients = _cluster(aof_server.url)
    killer = Killer(lambda: aof_server.client(socket_timeout=2))
    killer.start()
    restarted = []

    def damage(elapsed):
        if elapsed > DURATION / 2 and not restarted:
            killer.paused.set()
            aof_server.restart()
            killer.paused.clear()
            restarted.append(elapsed)

    try:
        result = _run(nodes, clients, aof_server.url, damage)
    finally:
        killer.stop()
        stats = [n.mgr.stats() for n in nodes]
        for node in nodes:
            node.stop()
        for client in clients:
            client.disconnect()
    print(f'\nchaos: {result.line()}; {killer.kills} connections killed; '
          f'reconnects {sum(s["reconnects"] for s in stats)}, duplicates '
          f'dropped {sum(s["duplicates"] for s in stats)}')
    assert restarted and killer.kills > 20
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)


@pytest.mark.nodes  # through _cluster
def test_emits_made_while_redis_is_down_arrive_when_it_returns(aof_server):
    """Redis stopped for 3 s in the middle of a steady broadcast."""
    nodes, clients = _cluster(aof_server.url, clients_per_node=1)
    phases = []

    def damage(elapsed):
        if elapsed > 3 and not phases:
            aof_server.stop()
            phases.append('down')
        elif elapsed > 6 and phases == ['down']:
            assert not nodes[0].mgr.healthy()
            assert nodes[0].mgr.stats()['buffered'] > 0
            aof_server.start()
            phases.append('up')

    try:
        result = _run(nodes, clients, aof_server.url, damage)
    finally:
        for node in nodes:
            node.stop()
        for client in clients:
            client.disconnect()
    print(f'\nredis down 3 s: {result.line()}')
    assert phases == ['down', 'up']
    assert (result.lost, result.duplicated, result.reordered) == (0, 0, 0)
