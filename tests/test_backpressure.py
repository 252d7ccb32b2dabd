"""A server emitting faster than its own reader reads is held back
(``socketio_streams.pressure``) rather than let ``MAXLEN`` trim what that
reader has not read."""
from __future__ import annotations

import time
from typing import Any, Callable

from socketio_streams import RedisStreamsManager, positions, pressure
from socketio_streams.pressure import Unread

from .nodes import Node, hold_reader, wait_until
from .servers import RedisProcess


def test_a_publisher_far_ahead_of_its_own_reader_waits_for_it(
        redis_server, nodes, clients):
    """The reader takes 10 entries a round trip, the publisher up to 500:
    without backpressure the burst outruns ``max_len`` (the reader logs
    thousands of entries trimmed unread). With it, nothing is trimmed
    unread, and every packet still reaches the local client."""
    count = 4000
    node = Node(redis_server.url, max_len=500, read_count=10)
    nodes.append(node)
    clients.append(node.client())
    node.at_once(lambda: [node.sio.emit('n', i) for i in range(count)])
    assert node.mgr.flush(60)
    admin = redis_server.client()
    last = admin.xinfo_stream('socket.io')['last-generated-id'].decode()
    reader = node.mgr._links.readers['socket.io']
    wait_until(lambda: reader.last_id == last, 30, 'the reader at the end')
    clients[0].wait_for('n', count=count, timeout=30)
    assert node.mgr.stats()['gaps'] == 0
    # each once (an AsyncNode's at_once makes the emits concurrent tasks)
    assert sorted(args[0] for args in clients[0].events('n')) == \
        list(range(count))


def test_redis_restarting_while_the_publisher_is_held_loses_nothing(
        tmp_path, nodes, clients, monkeypatch):
    """The publisher is held back by its own reader (held at its 20th
    entry) with part of a burst still buffered, and Redis restarts (AOF
    on) meanwhile: a client of another server gets every packet once.
    (``max_len`` holds the whole burst: that other server's reader is not
    what this is about.)"""
    count = 1000
    monkeypatch.setattr(pressure, 'WAIT', 30.0)  # held until released
    server = RedisProcess(str(tmp_path / 'redis'),
                          args=('--appendonly', 'yes')).start()
    try:
        node = Node(server.url, max_len=1200, read_count=10)
        other = Node(server.url)
        nodes.extend([node, other])
        clients.extend([other.client(), node.client()])  # (its reader)
        seen, gates = hold_reader(node.mgr._links.readers['socket.io'], 20)
        node.at_once(lambda: [node.sio.emit('n', i) for i in range(count)])
        wait_until(lambda: len(seen) >= 20 and
                   node.mgr.stats()['buffered'] > 0, 10,
                   'the reader held, and the publisher with it')
        server.restart()
        gates[20].set()
        assert node.mgr.flush(60)
        clients[0].wait_for('n', count=count, timeout=30)
        assert sorted(args[0] for args in clients[0].events('n')) == \
            list(range(count))
    finally:
        server.stop()


def test_unread_counts_what_the_reader_has_not_read_back():
    position: dict = {'s': '0-0'}
    unread = Unread(position.get)
    for i in range(1, 4):
        unread.wrote('s', f'{i}-0'.encode())
    assert unread.count('s', 1000) == 3
    position['s'] = '2-0'  # it read two: marks are per look (per batch)
    assert unread.count('s', 1000) == 3
    unread.wrote('s', b'4-0')
    position['s'] = '3-0'
    assert unread.count('s', 1000) == 1
    position['s'] = '9-0'  # read past everything (entries trimmed)
    assert unread.count('s', 1000) == 0
    del position['s']  # no reader: nothing to wait for meanwhile
    unread.wrote('s', b'10-0')
    assert unread.count('s', 1000) == 0
    position['s'] = '9-0'  # back where it was: 10 and 11 unread
    unread.wrote('s', b'11-0')
    assert unread.count('s', 1000) == 2


def test_a_reader_that_reports_late_is_counted_from_where_it_is():
    """Written while no reader was known (its first report still to
    come, or one gone stale): once it reports, what it has not read of
    those is unread too (or up to ``every(max_len)`` more); none more
    than ``max_len`` back (trimmed), and no more marks kept meanwhile
    than that needs."""
    position: dict = {}
    unread = Unread(position.get)
    max_len, step = 1600, positions.every(1600)  # 100
    for i in range(1, 1201):
        unread.wrote('s', f'{i}-0')
        assert unread.count('s', max_len) == 0
    assert len(unread._marks['s']) <= max_len // step + 1
    position['s'] = '20-0'  # the first report: read 20 of ours
    assert 1200 - 20 <= unread.count('s', max_len) <= 1200 - 20 + step
    del position['s']
    for i in range(1201, 5001):
        unread.wrote('s', f'{i}-0')
        assert unread.count('s', max_len) == 0
    assert len(unread._marks['s']) <= max_len // step + 1
    position['s'] = '20-0'  # far behind: the trimmed are not counted
    assert max_len <= unread.count('s', max_len) <= max_len + step
    kept = len(unread._marks['s'])
    unread.count('s', max_len)  # looked at again, nothing written since
    assert len(unread._marks['s']) == kept
    position['s'] = '5000-0'  # caught up
    assert unread.count('s', max_len) == 0


def _reported_once(emit: Callable[[], Any], admin: Any,
                   other: Node) -> None:
    """A first entry (``emit()``), read by ``other``: its reader's
    position is in Redis before a burst (a reader not known yet is not
    waited for, and one known only once the burst is well under way may
    have fallen behind by more than ``max_len`` already, on a busy
    machine)."""
    emit()
    wait_until(lambda: admin.hget('socket.io:readers', other.mgr.uid), 10,
               'the other reader\'s first position')


def test_a_publisher_waits_for_a_slow_reader_elsewhere(
        redis_server, nodes, clients, monkeypatch):
    """Another server's reader is held at its 20th entry; the emitting
    server's own reader keeps up. The emitter is held too, by the position
    the other reader reports in Redis (``socketio_streams.positions``),
    rather than let ``MAXLEN`` trim what that reader has not read: once
    released, the other server's client gets every packet once, and no
    gap is logged."""
    count = 3000
    monkeypatch.setattr(pressure, 'WAIT', 30.0)  # held until released
    monkeypatch.setattr(positions, 'STALE', 30.0)
    emitter = Node(redis_server.url, max_len=500)
    other = Node(redis_server.url, max_len=500, read_count=10)
    nodes.extend([emitter, other])
    clients.extend([other.client(), emitter.client()])
    seen, gates = hold_reader(other.mgr._links.readers['socket.io'], 20)
    admin = redis_server.client()
    _reported_once(lambda: emitter.at_once(
        lambda: [emitter.sio.emit('first', 0)]), admin, other)
    emitter.at_once(
        lambda: [emitter.sio.emit('n', i) for i in range(count)])
    wait_until(lambda: len(seen) >= 20 and
               emitter.mgr.stats()['buffered'] > 0, 10,
               'the other reader held, and the publisher with it')
    written = admin.xinfo_stream('socket.io')['entries-added']
    assert written - 20 < 500, 'written past max_len while it was held'
    gates[20].set()
    assert emitter.mgr.flush(60)
    clients[0].wait_for('n', count=count, timeout=30)
    assert sorted(args[0] for args in clients[0].events('n')) == \
        list(range(count))
    assert other.mgr.stats()['gaps'] == 0
    assert admin.hget('socket.io:readers', other.mgr.uid)
    other.stop()  # a server that stops takes its position away
    assert not admin.hget('socket.io:readers', other.mgr.uid)


def test_forged_positions_do_not_hold_a_publisher(redis_server, nodes,
                                                  clients, monkeypatch):
    """Fields that are not positions, or were reported long ago (or far
    in the future), are deleted; one reported a few seconds ago is not
    waited for: a burst of 3,000 with ``max_len=500`` goes through."""
    monkeypatch.setattr(pressure, 'WAIT', 30.0)  # a wait would not end
    admin = redis_server.client()
    now = int(time.time() * 1000)
    admin.hset('socket.io:readers', mapping={
        'garbage': '\xff not a position', 'old': f'1-0 {now - 120_000}',
        'ahead': f'1-0 {now + 3_600_000}', 'stale': f'1-0 {now - 10_000}'})
    node = _burst_goes_through(redis_server.url, nodes, clients)
    fields = {k.decode() for k in admin.hgetall('socket.io:readers')}
    assert fields == {'stale', node.mgr.uid}


def test_the_slowest_reported_position_is_waited_for():
    now = 1000.0
    reply = {b'own': b'1-0 1000000', b'a': b'5-3 999000',
             b'b': b'5-10 1000000', b'c': b'2-0 996000',
             b'd': b'nonsense', b'e': b'3-x 1000000', b'f': b'1-0 900000',
             b'g': b'1-0 1061000', b'h': b'\xff\xfe 1000000'}
    found, forget = positions.slowest(reply, 'own', now)
    assert found == '5-3'  # not own's, not c's (stale: 4 s ago)
    assert sorted(forget) == [b'd', b'e', b'f', b'g', b'h']
    assert positions.slowest({}, 'own', now) == (None, [])
    assert positions.value('7-1', 12.5) == '7-1 12500'


def test_a_write_only_emitter_waits_for_the_readers_of_servers(
        redis_server, nodes, clients, emitters, monkeypatch):
    """A ``write_only`` emitter has no reader of its own: the positions
    servers report hold it as they hold a server (the test above)."""
    count = 3000
    monkeypatch.setattr(pressure, 'WAIT', 30.0)
    monkeypatch.setattr(positions, 'STALE', 30.0)
    other = Node(redis_server.url, max_len=500, read_count=10)
    nodes.append(other)
    clients.append(other.client())
    seen, gates = hold_reader(other.mgr._links.readers['socket.io'], 20)
    emitter = RedisStreamsManager(redis_server.url, write_only=True,
                                  max_len=500)
    emitters.append(emitter)
    admin = redis_server.client()
    _reported_once(lambda: emitter.emit('first', 0), admin, other)
    for i in range(count):
        emitter.emit('n', i)
    wait_until(lambda: len(seen) >= 20 and emitter.stats()['buffered'] > 0,
               10, 'the reader held, and the emitter with it')
    written = admin.xinfo_stream('socket.io')['entries-added']
    assert written - 20 < 500, 'written past max_len while it was held'
    gates[20].set()
    assert emitter.flush(60)
    clients[0].wait_for('n', count=count, timeout=30)
    assert sorted(args[0] for args in clients[0].events('n')) == \
        list(range(count))
    assert other.mgr.stats()['gaps'] == 0


def test_a_hash_of_too_many_positions_is_not_read(redis_server, nodes,
                                                  clients, monkeypatch,
                                                  caplog):
    """More fields than ``MAX_READERS`` (forged, fresh, far behind) is
    not a cluster's readers: not read, said once, and the publisher is
    not held by them."""
    monkeypatch.setattr(pressure, 'WAIT', 30.0)  # a wait would not end
    monkeypatch.setattr(positions, 'MAX_READERS', 50)
    monkeypatch.setattr(positions, 'STALE', 50.0)  # they stay fresh
    now = int(time.time() * 1000)
    redis_server.client().hset('socket.io:readers', mapping={
        f'forged{i}': f'1-0 {now}' for i in range(51)})
    _burst_goes_through(redis_server.url, nodes, clients)
    said = [r for r in caplog.records if 'more than 50' in r.getMessage()]
    assert len(said) == 1


def _burst_goes_through(url: str, nodes: list, clients: list) -> Node:
    """A server with ``max_len=500`` and a client emits 3,000 packets:
    written within 20 s (``WAIT`` is made longer than that), and all
    received."""
    node = Node(url, max_len=500)
    nodes.append(node)
    clients.append(node.client())
    node.at_once(lambda: [node.sio.emit('n', i) for i in range(3000)])
    assert node.mgr.flush(20)
    clients[0].wait_for('n', count=3000, timeout=30)
    return node
