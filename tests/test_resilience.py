"""Outages, restarts, trimming, huge payloads: nothing lost, nobody deaf."""
import logging
import threading
import time

import pytest

from socketio_streams import BufferFullError, RedisStreamsManager, connection
from socketio_streams.reader import from_now

from .nodes import Node, hold_reader, settle, wait_until
from .servers import RedisProcess


@pytest.fixture
def down_server(tmp_path):
    """A Redis that is not running yet (its port is reserved)."""
    server = RedisProcess(str(tmp_path / 'redis'))
    yield server
    server.stop()


def test_servers_start_while_redis_is_down_and_deliver_once_it_is_up(
        down_server, nodes, clients, caplog):
    """Emits made before Redis ever came up are delivered when it does."""
    nodes.extend([Node(down_server.url), Node(down_server.url)])
    clients.extend([nodes[0].client(), nodes[1].client()])
    for i in range(50):
        nodes[0].sio.emit('early', i)
    clients[0].wait_for('early', count=50)  # local clients at once
    wait_until(lambda: not nodes[1].mgr.healthy(), 5, 'unhealthy')
    assert nodes[0].mgr.stats()['buffered'] == 50
    with caplog.at_level(logging.ERROR, logger='socketio_streams'):
        # keeps retrying, at ERROR every time
        wait_until(lambda: caplog.text.count('still unreachable') >= 3, 5,
                   'retries at ERROR')
    down_server.start()
    clients[1].wait_for('early', count=50, timeout=15)
    assert clients[1].events('early') == [(i,) for i in range(50)]
    wait_until(lambda: nodes[0].mgr.healthy() and nodes[1].mgr.healthy(),
               10, 'healthy again')
    wait_until(lambda: nodes[0].mgr.stats()['buffered'] == 0, 2,
               'the last reply read (written ahead)')


def test_a_full_buffer_raises_and_counts_never_drops(down_server, nodes):
    mgr = RedisStreamsManager(down_server.url, write_only=True,
                              buffer_size=10)
    for i in range(10):
        mgr.emit('n', i)
    with pytest.raises(BufferFullError, match='buffer_size=10'):
        mgr.emit('n', 10)
    assert mgr.stats()['buffer_full'] == 1
    assert mgr.stats()['buffered'] == 10
    down_server.start()
    mgr.close(timeout=15)
    entries = down_server.client().xrange('socket.io')
    assert len(entries) == 10


#: a reader's blocking commands (by its consumer group, or not)
READS = ('xread', 'xreadgroup')


def test_close_is_prompt_even_with_a_long_block_time(redis_server, nodes,
                                                     clients):
    node = Node(redis_server.url, block_time_ms=60_000)
    nodes.append(node)
    clients.append(node.client())
    node.sio.emit('x', 1)
    wait_until(lambda: any(c.get('cmd') in READS for c in
                           redis_server.client().client_list()), 5, 'XREAD')
    started = time.monotonic()
    node.mgr.close()
    assert time.monotonic() - started < 10
    wait_until(lambda: not any(c.get('cmd') in READS for c in
                               redis_server.client().client_list()), 5,
               'reader gone')


def test_redis_restarted_without_persistence(redis_server, nodes, clients):
    """The stream is gone: readers carry on with the new one, and PUB/SUB
    channels are subscribed again (requests get answers)."""
    nodes.extend(Node(redis_server.url) for _ in range(3))
    clients.extend(node.client() for node in nodes)
    nodes[0].sio.emit('before', 1)
    settle(nodes[0], clients)
    redis_server.restart()
    assert not redis_server.client().exists('socket.io')
    nodes[1].sio.emit('after', 2)
    for client in clients:
        client.wait_for('after', timeout=15)
    wait_until(lambda: nodes[0].mgr.server_count() == 3, 15, '3 servers')
    sockets = nodes[0].mgr.fetch_sockets(timeout=5)
    assert len(sockets) == 3
    assert [c.events('after') for c in clients] == [[(2,)]] * 3


def test_a_reader_that_falls_behind_max_len_reports_the_gap(
        redis_server, nodes, clients, caplog):
    nodes.append(Node(redis_server.url, read_count=10))
    clients.append(nodes[0].client())
    # held at the first entry while the emitter writes: behind for sure
    # (a fast reader can keep up with a write_only burst otherwise)
    seen, gates = hold_reader(nodes[0].mgr._links.readers['socket.io'], 1)
    emitter = RedisStreamsManager(redis_server.url, write_only=True,
                                  max_len=20)
    with caplog.at_level(logging.ERROR, logger='socketio_streams'):
        for i in range(3000):
            emitter.emit('n', i)
        emitter.close()
        wait_until(lambda: seen, 10, 'the first entry read')
        gates[1].set()
        emitter = RedisStreamsManager(redis_server.url, write_only=True)
        emitter.emit('last', 1)
        emitter.close()
        clients[0].wait_for('last', timeout=10)
        # every entry is either read or counted as trimmed unread
        wait_until(lambda: len(clients[0].events('n')) + nodes[0].mgr
                   .stats()['gaps'] == 3000, 15, 'exact accounting')
    received = len(clients[0].events('n'))
    gaps = nodes[0].mgr.stats()['gaps']
    print(f'\nmax_len=20, 3000 sent: {received} read, {gaps} reported as '
          f'trimmed unread')
    assert gaps > 0 and received < 3000
    assert received + gaps <= 3000
    assert 'fell behind by' in caplog.text
    got = [args[0] for args in clients[0].events('n')]
    assert got == sorted(got)  # what did arrive is in order


def test_a_huge_payload_neither_kills_the_reader_nor_starves_others(
        redis_server, nodes, clients):
    nodes.extend([Node(redis_server.url), Node(redis_server.url)])
    clients.append(nodes[1].client())
    blob = bytes(range(256)) * (80 * 1024)  # 20 MiB
    nodes[0].sio.emit('small', 1)
    nodes[0].sio.emit('huge', {'blob': blob})
    nodes[0].sio.emit('small', 2)
    clients[0].wait_for('small', count=2, timeout=60)
    (huge,) = clients[0].events('huge')
    assert huge[0]['blob'] == blob
    assert clients[0].events('small') == [(1,), (2,)]
    assert nodes[1].mgr.healthy()


def test_a_subscriber_killed_by_the_output_buffer_limit_comes_back(
        redis_server, nodes, clients):
    """python-socketio's listener died for good in this case; ours
    reconnects and answers requests again."""
    nodes.extend([Node(redis_server.url), Node(redis_server.url)])
    clients.extend([nodes[0].client(), nodes[1].client()])
    r = redis_server.client()
    r.config_set('client-output-buffer-limit', 'pubsub 1024 0 0')
    r.publish(f'socket.io#/#{nodes[1].mgr.uid}#', b'x' * 100_000)
    wait_until(lambda: nodes[1].mgr.stats()['reconnects'] >= 1, 5,
               'subscriber killed')
    r.config_set('client-output-buffer-limit', 'pubsub 32mb 8mb 60')
    wait_until(lambda: len(nodes[0].mgr.fetch_sockets(timeout=2)) == 2, 15,
               'answers again')


def test_a_frozen_redis_is_noticed_and_loses_nothing(redis_server, nodes,
                                                     clients, monkeypatch):
    """Redis stops answering without closing anything (as a host behind a
    partition): commands time out instead of hanging for good, the server
    says it is unhealthy, and what was emitted meanwhile arrives, once and
    in order, when Redis answers again."""
    monkeypatch.setattr(connection, 'COMMAND_TIMEOUT', 1.0)
    nodes.extend([Node(redis_server.url), Node(redis_server.url)])
    clients.append(nodes[1].client())
    nodes[0].sio.emit('n', 0)
    clients[0].wait_for('n')
    redis_server.freeze()
    try:
        for i in range(1, 50):
            nodes[0].sio.emit('n', i)
        wait_until(lambda: not nodes[0].mgr.healthy(), 10, 'noticed')
    finally:
        redis_server.thaw()
    clients[0].wait_for('n', count=50, timeout=30)
    settle(nodes[0], clients)
    assert [args[0] for args in clients[0].events('n')] == list(range(50))
    wait_until(nodes[0].mgr.healthy, 15, 'healthy again')


def test_a_lagging_reader_shows_in_stats_and_health(redis_server, nodes,
                                                    clients):
    """Entries waiting unread show as ``lag``; more than max_len / 2 of
    them (trimming is near) make the server unhealthy until it catches
    up."""
    nodes.append(Node(redis_server.url, read_count=10, max_len=100))
    clients.append(nodes[0].client())
    reader = nodes[0].mgr._links.readers['socket.io']
    seen, gates = hold_reader(reader, 1, 15)
    emitter = RedisStreamsManager(redis_server.url, write_only=True)
    emitter.emit('n', 0)
    wait_until(lambda: seen, 5, 'the first entry read')
    for i in range(1, 500):
        emitter.emit('n', i)
    assert emitter.flush(10)
    emitter.close()
    gates[1].set()  # the reader reads on, and stops again at entry 15
    wait_until(lambda: len(seen) >= 15, 10, 'entry 15')
    stats = nodes[0].mgr.stats()
    assert stats['lag'] >= 400 and not stats['healthy']
    gates[15].set()
    clients[0].wait_for('n', count=500, timeout=30)
    wait_until(lambda: nodes[0].mgr.stats()['lag'] == 0, 10, 'caught up')
    assert nodes[0].mgr.healthy()


def test_publisher_keeps_order_under_concurrent_emitters(redis_server,
                                                         nodes, clients):
    """Sequence numbers rise in stream order whatever thread emits, or
    readers would drop entries as copies (a loss the CI once caught)."""
    nodes.extend([Node(redis_server.url), Node(redis_server.url)])
    clients.append(nodes[1].client())

    def burst(tag):
        for i in range(300):
            nodes[0].sio.emit('c', [tag, i])

    threads = [threading.Thread(target=burst, args=(t,)) for t in 'abcd']
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert nodes[0].mgr.flush(30)
    seqs = [int(fields[b'seq']) for _, fields in
            redis_server.client().xrange('socket.io')
            if fields[b'uid'] == nodes[0].mgr.uid.encode()]
    assert len(seqs) == 1200
    assert seqs == sorted(seqs)
    clients[0].wait_for('c', count=1200, timeout=60)  # slow when loaded
    assert nodes[1].mgr.stats()['duplicates'] == 0
    for tag in 'abcd':
        got = [args[0][1] for args in clients[0].events('c')
               if args[0][0] == tag]
        assert got == list(range(300))


def test_reading_from_now_misses_no_entry_of_this_millisecond(
        redis_server, monkeypatch):
    """Where a reader starts when Redis could not tell it the stream's end
    (``reader.from_now``): the first entry of the millisecond it was made
    in (``<ms>-0``) is read, not skipped."""
    monkeypatch.setattr(time, 'time', lambda: 1700000000.123)
    start = from_now()
    store = redis_server.client()
    store.xadd('clock', {'n': '1'}, id='1700000000123-0')
    [(_key, entries)] = store.xread({'clock': start})
    assert [entry_id for entry_id, _fields in entries] == \
        [b'1700000000123-0']
