"""Cluster-wide operations (the seed adapter's table) across servers."""
import threading
import time

import pytest
import socketio

from socketio_streams import AckTimeoutError, RedisStreamsManager, cluster

from .asyncmode import ASYNC_MODE
from .nodes import MANAGER, settle, wait_until


@pytest.fixture
def trio(cluster, clients):
    """Three servers, one client each; client i is in room ``r<i>`` and
    in ``all``, with session data ``{'n': i}``."""
    for i, node in enumerate(cluster):
        node.sio.on('connect', lambda sid, environ, auth, n=node, i=i:
                    n.sio.save_session(sid, {'n': i}))
        client = node.client(auth={'token': f't{i}'}, answers={
            'ask': lambda x, i=i: f'{x}@{i}', 'bin': lambda x: x + b'!'})
        client.sio.call('join', f'r{i}')
        client.sio.call('join', 'all')
        clients.append(client)
    # every server answers every other's requests (on a loaded cluster a
    # server's subscription can go live after its first client connected)
    for node in cluster:
        wait_until(lambda n=node: len(n.mgr.fetch_sockets(timeout=5)) == 3,
                   10, 'each server answering')
    return cluster, clients


def _sids(sockets):
    return sorted(s.sid for s in sockets)


def test_fetch_sockets_returns_every_servers_sockets(trio):
    nodes, clients = trio
    sockets = nodes[0].mgr.fetch_sockets()
    assert _sids(sockets) == sorted(c.sid() for c in clients)
    remote = next(s for s in sockets if s.sid == clients[2].sid())
    assert remote.namespace == '/'
    assert remote.rooms == {clients[2].sid(), 'r2', 'all'}
    assert remote.data == {'n': 2}
    assert remote.handshake['auth'] == {'token': 't2'}
    assert remote.handshake['address'] == '127.0.0.1'
    assert remote.handshake['query']['transport'] == 'websocket'
    assert 'host' in remote.handshake['headers']
    # each socket names the server that holds it (ours for the local one)
    assert {s.sid: s.server for s in sockets} == {
        c.sid(): n.mgr.uid for c, n in zip(clients, nodes)}
    assert nodes[0].mgr.stats()['pending_requests'] == 0


def test_fetch_sockets_filters_by_room_and_skip_sid(trio):
    nodes, clients = trio
    assert _sids(nodes[1].mgr.fetch_sockets(to='r2')) == [clients[2].sid()]
    assert _sids(nodes[1].mgr.fetch_sockets(to=['r0', 'r2'])) == sorted(
        [clients[0].sid(), clients[2].sid()])
    assert _sids(nodes[1].mgr.fetch_sockets(
        to='all', skip_sid=clients[0].sid())) == sorted(
        [clients[1].sid(), clients[2].sid()])
    assert nodes[1].mgr.fetch_sockets(to='nobody') == []
    assert _sids(nodes[0].mgr.fetch_sockets(to=clients[1].sid())) == [
        clients[1].sid()]


def test_remote_socket_methods_act_where_the_socket_lives(trio):
    nodes, clients = trio
    (remote,) = nodes[0].mgr.fetch_sockets(to='r1')
    remote.join('extra')
    remote.emit('direct', {'hi': 1})
    clients[1].wait_for('direct')
    wait_until(lambda: 'extra' in nodes[1].sio.rooms(clients[1].sid()))
    remote.leave('extra')
    wait_until(lambda: 'extra' not in nodes[1].sio.rooms(clients[1].sid()))
    remote.disconnect()
    wait_until(lambda: not clients[1].sio.connected, 5, 'disconnect')
    assert clients[0].sio.connected and clients[2].sio.connected


def test_sockets_join_and_leave_are_ordered_with_emits(trio):
    nodes, clients = trio
    nodes[0].mgr.sockets_join('blue', to=['r1', 'r2'])
    nodes[0].sio.emit('blue', 1, to='blue')
    nodes[0].mgr.sockets_leave('blue', to='r2')
    nodes[0].sio.emit('blue', 2, to='blue')
    settle(nodes[0], clients)
    assert [c.events('blue') for c in clients] == [[], [(1,), (2,)], [(1,)]]


def test_sockets_join_respects_skip_sid(trio):
    nodes, clients = trio
    nodes[2].mgr.sockets_join(['x', 'y'], skip_sid=clients[0].sid())
    nodes[2].sio.emit('xy', 1, to='y')
    settle(nodes[2], clients)
    assert [len(c.events('xy')) for c in clients] == [0, 1, 1]


def test_disconnect_sockets_across_servers(trio):
    nodes, clients = trio
    nodes[0].mgr.disconnect_sockets(to='all', skip_sid=clients[2].sid())
    wait_until(lambda: not clients[0].sio.connected
               and not clients[1].sio.connected, 5, 'disconnects')
    assert clients[2].sio.connected


def test_disconnect_sockets_close_ends_the_whole_connection(cluster,
                                                            clients):
    client = cluster[1].client(namespaces=['/', '/chat'])
    clients.append(client)
    cluster[0].mgr.disconnect_sockets(close=True, namespace='/chat')
    wait_until(lambda: not client.sio.connected, 5, 'connection closed')


def test_server_side_emit_reaches_other_servers_only(trio):
    nodes, _clients = trio
    got = {i: [] for i in range(3)}
    for i, node in enumerate(nodes):
        node.mgr.on('hello', lambda *args, i=i: got[i].append(args))
    nodes[0].mgr.server_side_emit('hello', 'world', {'n': 1}, b'\x00')
    wait_until(lambda: got[1] and got[2], 5, 'server-side events')
    time.sleep(0.2)
    assert got[0] == []
    assert got[1] == got[2] == [('world', {'n': 1}, b'\x00')]


def test_server_side_emit_with_callback_collects_each_answer(trio):
    nodes, _clients = trio
    for i, node in enumerate(nodes):
        node.mgr.on('ping', lambda x, i=i: {'pong': x, 'from': i,
                                            'raw': b'\x01'})
    results = []
    done = threading.Event()
    nodes[1].mgr.server_side_emit(
        'ping', 5, callback=lambda err, res: (results.append((err, res)),
                                              done.set()))
    assert done.wait(5)
    err, responses = results[0]
    assert err is None
    assert sorted(r['from'] for r in responses) == [0, 2]
    assert all(r['raw'] == b'\x01' and r['pong'] == 5 for r in responses)
    wait_until(lambda: nodes[1].mgr.stats()['pending_requests'] == 0)


def test_server_side_emit_timeout_gives_the_answers_that_came(trio):
    nodes, _clients = trio
    nodes[1].mgr.on('slow', lambda: 'fast one')
    late = threading.Event()  # set when the test is done
    nodes[2].mgr.on('slow', lambda: late.wait(10) or 'too late')
    results = []
    done = threading.Event()
    nodes[0].mgr.server_side_emit(
        'slow', timeout=1, callback=lambda err, res: (
            results.append((err, res)), done.set()))
    assert done.wait(5)
    late.set()
    err, responses = results[0]
    assert isinstance(err, AckTimeoutError)
    assert responses == ['fast one'] and err.responses == ['fast one']
    assert nodes[0].mgr.stats()['pending_requests'] == 0


def test_a_hung_server_costs_one_timeout_not_every_request(trio):
    nodes, clients = trio
    freed = threading.Event()
    nodes[2].mgr.on('hang', lambda: freed.wait(10))
    nodes[0].mgr.server_side_emit('hang')  # nodes[2] now stuck
    time.sleep(0.2)
    with pytest.raises(AckTimeoutError) as failed:
        nodes[0].mgr.fetch_sockets(timeout=1)
    assert _sids(failed.value.responses) == sorted(
        [clients[0].sid(), clients[1].sid()])
    started = time.monotonic()
    sockets = nodes[0].mgr.fetch_sockets(timeout=5)
    assert time.monotonic() - started < 4  # not waiting for nodes[2] again
    assert clients[1].sid() in _sids(sockets)
    freed.set()


def test_a_silent_server_that_left_is_forgotten(trio, monkeypatch):
    """The list of servers not waited for does not keep those that left
    for good (every restart is a new server): bookkeeping never grows."""
    monkeypatch.setattr(cluster, 'SILENT_FOR', 0.5)
    nodes, _clients = trio
    freed = threading.Event()
    nodes[2].mgr.on('hang', lambda: freed.wait(10))
    nodes[0].mgr.server_side_emit('hang')
    time.sleep(0.2)
    with pytest.raises(AckTimeoutError):
        nodes[0].mgr.fetch_sockets(timeout=1)
    assert len(nodes[0].mgr._requests._silent) == 1
    freed.set()
    nodes[2].stop()
    time.sleep(0.6)
    assert len(nodes[0].mgr.fetch_sockets(timeout=5)) == 2
    assert nodes[0].mgr._requests._silent == {}


def test_a_server_that_leaves_mid_request_is_not_waited_for(trio):
    nodes, _clients = trio
    nodes[1].mgr.on('q', lambda: 'from 1')
    nodes[2].mgr.on('q', lambda: time.sleep(2) or 'from 2')
    results = []
    done = threading.Event()
    nodes[0].mgr.server_side_emit('q', timeout=30, callback=lambda e, r: (
        results.append((e, r)), done.set()))
    time.sleep(0.3)
    nodes[2].mgr.close(timeout=0)  # its subscription ends: Redis knows
    assert done.wait(10)
    assert results[0][0] is None
    assert 'from 1' in results[0][1]


def test_emit_with_ack_collects_one_answer_per_client(trio):
    nodes, clients = trio
    answers = nodes[0].mgr.emit_with_ack('ask', 'q', timeout=5)
    assert sorted(answers) == ['q@0', 'q@1', 'q@2']
    assert nodes[0].mgr.emit_with_ack('bin', b'\x07', to='r2') == [
        b'\x07!']
    assert nodes[1].mgr.emit_with_ack('ask', 'x', to='all',
                                      skip_sid=clients[0].sid()) in (
        ['x@1', 'x@2'], ['x@2', 'x@1'])
    assert nodes[0].mgr.stats()['pending_requests'] == 0


def test_emit_with_ack_to_an_empty_room_returns_at_once(trio):
    nodes, _clients = trio
    result = []
    thread = threading.Thread(target=lambda: result.append(
        nodes[0].mgr.emit_with_ack('ask', 1, to='nobody', timeout=60)))
    thread.start()
    thread.join(10)
    assert result == [[]]


def test_emit_with_ack_times_out_with_partial_answers(trio):
    nodes, clients = trio
    late = threading.Event()
    mute = nodes[1].client(answers={  # answers once the request timed out
        'ask': lambda x: late.wait(10) and 'late'})
    clients.append(mute)
    with pytest.raises(AckTimeoutError) as failed:
        nodes[0].mgr.emit_with_ack('ask', 'q', timeout=1.5)
    late.set()
    assert sorted(failed.value.responses) == ['q@0', 'q@1', 'q@2']
    assert nodes[0].mgr.stats()['pending_requests'] == 0


def test_server_count_counts_live_servers(trio):
    nodes, _clients = trio
    assert nodes[0].mgr.server_count() == 3
    nodes[2].stop()
    wait_until(lambda: nodes[0].mgr.server_count() == 2, 5, 'count 2')


def test_a_server_with_handlers_is_in_the_cluster_before_any_client(
        cluster):
    """As a Node server, a server that registered a server-side event
    handler listens at once, not at its first connection: an event sent
    before any client came reaches it, and it is counted."""
    got = []
    cluster[1].mgr.on('job', lambda x: got.append(x) or 'done')
    if MANAGER == 'asyncio':  # on() is no coroutine: it listens in a task
        wait_until(lambda: cluster[0].mgr.server_count() == 1, 5,
                   'the server listening')
    assert cluster[0].mgr.server_count() == 1
    answers = []
    done = threading.Event()
    cluster[0].mgr.server_side_emit(
        'job', 5, callback=lambda err, res: answers.append((err, res)) or
        done.set())
    assert done.wait(5)
    assert answers == [(None, ['done'])] and got == [5]


def test_handlers_registered_before_the_server_listen_with_it(
        redis_server, emitters):
    """``@mgr.on`` before ``socketio.Server(client_manager=mgr)``, in a
    namespace the server has no handlers for: it listens there too."""
    mgr = RedisStreamsManager(redis_server.url)
    emitters.append(mgr)
    got = []
    mgr.on('job', got.append, namespace='/jobs')
    socketio.Server(client_manager=mgr, async_mode=ASYNC_MODE)
    sender = RedisStreamsManager(redis_server.url, write_only=True)
    emitters.append(sender)
    wait_until(lambda: sender.server_count('/jobs') == 1, 5, 'listening')
    sender.server_side_emit('job', 7, namespace='/jobs')
    wait_until(lambda: got == [7], 5, 'the event')


def test_write_only_emitter_runs_socket_management(
        trio, redis_server, emitters):
    nodes, clients = trio
    got = []
    nodes[1].mgr.on('job', lambda x: got.append(x))
    mgr = RedisStreamsManager(redis_server.url, write_only=True)
    emitters.append(mgr)  # closed even if the test fails: no phantom
    heard = []
    mgr.on('news', heard.append)  # it listens on demand
    # a request waits for its subscriptions: 'news' is heard from then on
    # (PUB/SUB: what is published before is not)
    assert len(mgr.fetch_sockets(timeout=5)) == 3
    assert mgr.server_count() == 3  # but is not a server
    nodes[0].mgr.server_side_emit('news', 1)
    wait_until(lambda: heard == [1])
    mgr.sockets_join('w', to='r0')
    mgr.server_side_emit('job', 7)
    mgr.sockets_leave('all', to='r1')
    mgr.disconnect_sockets(to='r2')
    with pytest.raises(RuntimeError):
        mgr.server_side_emit('job', 1, callback=lambda e, r: None)
    mgr.close()
    wait_until(lambda: not clients[2].sio.connected, 5, 'disconnect')
    wait_until(lambda: 'w' in nodes[0].sio.rooms(clients[0].sid()))
    wait_until(lambda: 'all' not in nodes[1].sio.rooms(clients[1].sid()))
    wait_until(lambda: got == [7])
