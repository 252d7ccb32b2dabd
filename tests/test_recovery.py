"""Connection state recovery, proven with the official JavaScript client."""
import threading

import pytest

from socketio_streams import protocol

from .nodejs import NodeClient, NodeUnavailable, npm_ready
from .nodes import waiting_first, wait_until

try:
    npm_ready()
except NodeUnavailable as exc:  # pragma: no cover - node is in the CI
    pytest.skip(f'Node.js peers unavailable: {exc}', allow_module_level=True)

CSR = {'connection_state_recovery': {'max_disconnection_duration': 30}}


@pytest.fixture
def csr_nodes(make_node):
    return [make_node(**CSR), make_node(**CSR)]


@pytest.fixture
def js_clients():
    made = []

    def make(url, **kwargs):
        client = NodeClient(url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


def _events(client, name):
    return [line['args'] for line in client.events(name)]


def _drop_and_return(client):
    """Close the transport; wait until the client is back."""
    before = len(client.events('connect'))
    client.command('close_transport')
    client.wait_for('disconnect')

    def back():
        client.wait_for(lambda line: len(client.events('connect')) > before,
                        timeout=10)
        return client.events('connect')[-1]
    return back


def test_broadcasts_carry_their_stream_offset_local_and_remote(
        csr_nodes, js_clients, redis_server):
    a, b = csr_nodes
    local, remote = js_clients(a.url), js_clients(b.url)
    a.sio.emit('ev', {'n': 1})
    local.wait_for('ev')
    remote.wait_for('ev')
    (entry_id,) = [e[0].decode() for e in
                   redis_server.client().xrange('socket.io')]
    assert _events(local, 'ev') == _events(remote, 'ev') == [
        [{'n': 1}, entry_id]]


def test_acked_emits_carry_no_offset(csr_nodes, js_clients):
    a, b = csr_nodes
    client = js_clients(b.url)
    client.command('answer', event='ask', value='yes')
    assert a.sio.call('ask', 1, to=client.sid, timeout=5) == 'yes'
    client.wait_for('ask')
    assert _events(client, 'ask') == [[1]]


def test_a_dropped_client_comes_back_recovered_with_what_it_missed(
        csr_nodes, js_clients, make_node):
    """The Node adapter's own scenarios: io.emit, to(room), to(other room),
    except(room), other namespace, socket.emit."""
    a, b = csr_nodes
    client = js_clients(a.url)
    client.command('emit', event='join', args=['room1'], ack=True)
    a.sio.emit('warmup', 0)
    client.wait_for('warmup')
    sid = client.sid
    back = _drop_and_return(client)
    a.sio.emit('missed', 1)
    # in the stream before b's: two servers' emits have no order of their
    # own (under eventlet, a's publisher could write after b's)
    assert a.mgr.flush()
    b.sio.emit('missed', 2, to='room1')
    a.sio.emit('not-for-me', 1, to='room2')
    b.sio.emit('not-for-me', 2, skip_sid='room1')
    a.sio.emit('not-for-me', 3, namespace='/chat')
    b.sio.emit('missed', 3, to=sid)
    assert a.mgr.flush() and b.mgr.flush()
    line = back()
    assert line['recovered'] is True and line['id'] == sid
    client.wait_for(lambda ln: ln.get('event') == 'missed' and
                    ln['args'][0] == 3)
    assert [args[0] for args in _events(client, 'missed')] == [1, 2, 3]
    assert _events(client, 'not-for-me') == []
    # rooms are back: a new emit to room1 reaches it
    b.sio.emit('live', 4, to='room1')
    client.wait_for('live')


def test_recovery_works_on_another_server(csr_nodes, js_clients,
                                          redis_server):
    a, b = csr_nodes
    client = js_clients(a.url, auth={'user': 'ann'})
    a.sio.emit('warmup', 0)
    client.wait_for('warmup')
    sid = client.sid
    client.command('close_transport')
    client.wait_for('disconnect')
    b.sio.emit('missed', 'x')
    client.stop()
    # the same pid and offset, presented to server b by a new client
    state = client.events('warmup')[0]
    offset = state['args'][-1]
    assert a.mgr.sockets.get('/', sid) is None  # a stored it in Redis
    stored = redis_server.client().keys('sio:session:*')  # every node
    assert len(stored) == 1
    pid = stored[0].decode()[len('sio:session:'):]
    other = js_clients(b.url, auth={'pid': pid, 'offset': offset})
    assert other.sid == sid
    other.wait_for('missed')
    assert _events(other, 'missed') == [['x', _events(other, 'missed')[0][1]]]
    assert b.mgr.is_recovered(sid)


@pytest.mark.parametrize('auth', [
    {'pid': 'unknown-pid', 'offset': '1-0'},
    {'pid': 'p', 'offset': 'not-an-offset'},
    {'pid': 42, 'offset': None},
])
def test_unknown_pid_or_bad_offset_gives_a_fresh_session(csr_nodes,
                                                         js_clients, auth):
    a, _b = csr_nodes
    client = js_clients(a.url, auth=auth)
    line = client.events('connect')[0]
    assert line['recovered'] is False
    assert not a.mgr.is_recovered(client.sid)


def test_a_trimmed_offset_gives_a_fresh_session(make_node, js_clients,
                                                redis_server):
    a = make_node(max_len=10, **CSR)
    client = js_clients(a.url)
    a.sio.emit('warmup', 0)
    client.wait_for('warmup')
    _away(client, redis_server)  # (back only once the stream is trimmed)
    for i in range(500):
        a.sio.emit('flood', i)
    assert a.mgr.flush()
    assert _back(client, a.url)['recovered'] is False


def test_an_expired_session_gives_a_fresh_session(make_node, js_clients):
    a = make_node(connection_state_recovery={
        'max_disconnection_duration': 0.5})
    client = js_clients(a.url, reconnection_delay=2000,
                        reconnection_delay_max=2000)
    a.sio.emit('warmup', 0)
    client.wait_for('warmup')
    back = _drop_and_return(client)
    line = back()
    assert line['recovered'] is False


def test_missed_packets_come_before_live_ones_while_others_broadcast(
        csr_nodes, js_clients, make_node):
    """Another server keeps broadcasting during the restore: the client
    gets every packet once, in order."""
    a, b = csr_nodes
    client = js_clients(a.url)
    b.sio.emit('n', -1)
    client.wait_for('n')
    back = _drop_and_return(client)
    import threading
    stop = threading.Event()

    def pump():
        i = 0
        while not stop.is_set() and i < 3000:
            b.sio.emit('n', i)
            i += 1
            stop.wait(0.002)
        return i

    count = []
    thread = threading.Thread(target=lambda: count.append(pump()))
    thread.start()
    line = back()
    stop.set()
    thread.join()
    assert line['recovered'] is True
    client.wait_for(lambda ln: ln.get('event') == 'n' and
                    ln['args'][0] == count[0] - 1, timeout=15)
    got = [args[0] for args in _events(client, 'n')]
    assert got == list(range(-1, count[0]))


def test_session_is_stored_in_the_node_format(csr_nodes, js_clients,
                                              redis_server):
    a, _b = csr_nodes
    client = js_clients(a.url)
    client.command('emit', event='join', args=['room1'], ack=True)
    a.sio.emit('warmup', 0)
    client.wait_for('warmup')
    sid = client.sid
    client.command('close_transport')
    client.wait_for('disconnect')
    r = redis_server.client()
    from .nodes import wait_until
    keys = wait_until(lambda: r.keys('sio:session:*'), 5, 'session stored')
    session = protocol.decode_session(r.get(keys[0]))
    assert session['sid'] == sid
    assert set(session['rooms']) == {sid, 'room1'}
    # where the stream stood when it connected (before 'warmup')
    (warmup,) = [e[0].decode() for e in r.xrange('socket.io')]
    assert protocol.compare_offsets(session['offset'], warmup) < 0
    assert 0 < r.pttl(keys[0]) <= 30_000


def test_a_large_backlog_is_replayed_whole_in_batches(make_node,
                                                      js_clients):
    """3000 missed packets, 30 XRANGE batches: no cap, nothing dropped."""
    a = make_node(**CSR)
    client = js_clients(a.url)
    a.sio.emit('n', -1)
    client.wait_for('n')
    back = _drop_and_return(client)
    for i in range(3000):
        a.sio.emit('n', i)
    assert a.mgr.flush(10)
    assert back()['recovered'] is True
    client.wait_for(lambda ln: ln.get('event') == 'n' and
                    ln['args'][0] == 2999, timeout=30)
    assert [args[0] for args in _events(client, 'n')] == list(
        range(-1, 3000))


def test_volatile_packets_received_live_are_not_replayed(csr_nodes,
                                                         js_clients,
                                                         redis_server):
    """A Node server's volatile broadcast reaches the client live, without
    an offset, and is not replayed after recovery (Node replays it)."""
    from .nodejs import NodeServer
    a, _b = csr_nodes
    node_server = NodeServer(redis_server.url)
    try:
        client = js_clients(a.url)
        a.sio.emit('warmup', 0)
        client.wait_for('warmup')
        node_server.command('emit', event='vol', args=[1], volatile=True)
        client.wait_for('vol')
        assert _events(client, 'vol') == [[1]]
        back = _drop_and_return(client)
        node_server.command('emit', event='vol', args=[2], volatile=True)
        node_server.command('emit', event='missed', args=[3])
        assert back()['recovered'] is True
        client.wait_for('missed')
        assert _events(client, 'vol') == [[1]]
    finally:
        node_server.stop()


def test_flask_socketio_recovers_with_the_manager_option_alone(
        redis_server, js_clients):
    from flask import Flask
    from flask_socketio import SocketIO

    from socketio_streams import RedisStreamsManager

    from .nodes import serve
    app = Flask(__name__)
    socketio = SocketIO(app, client_manager=RedisStreamsManager(
        redis_server.url, **CSR))
    http = serve(app)
    try:
        client = js_clients(http.url)
        socketio.emit('warmup', 0)
        client.wait_for('warmup')
        sid = client.sid
        back = _drop_and_return(client)
        socketio.emit('missed', 1)
        line = back()
        assert line['recovered'] is True and line['id'] == sid
        client.wait_for('missed')
    finally:
        http.stop()
        socketio.server.manager.close()


# --- a client that had received nothing yet (no offset) ----------------------

def _away(client, redis_server):
    """Close the transport and keep the client away; wait until its server
    stored the session."""
    client.command('close_transport', hold=True)
    client.wait_for('disconnect')
    r = redis_server.client()
    wait_until(lambda: list(r.scan_iter('sio:session:*')), 5,
               'the session to be stored')


def _back(client, url):
    """Reconnect a held client to ``url``; its new ``connect`` line."""
    before = len(client.events('connect'))
    client.command('connect', url=url)
    client.wait_for(lambda line: line.get('event') == 'connect' and
                    len(client.events('connect')) > before, 10)
    return client.events('connect')[-1]


def _quiet_client(a, b, js_clients):
    """A client of ``a`` in room1 that got no broadcast, connected after
    broadcasts from both servers reached ``a``'s clients."""
    watcher = js_clients(a.url)
    a.sio.emit('before', 0)
    b.sio.emit('before', 1)
    watcher.wait_for(lambda _: len(watcher.events('before')) == 2)
    client = js_clients(a.url)
    client.command('emit', event='join', args=['room1'], ack=True)
    return client


def _missed_while_away(a, b, sid):
    """Each in the stream before the next is sent: in this order."""
    for node, event, n, opts in [
            (a, 'missed', 1, {}), (b, 'missed', 2, {'to': 'room1'}),
            (a, 'not-for-me', 1, {'to': 'room2'}),
            (b, 'not-for-me', 2, {'skip_sid': 'room1'}),
            (a, 'not-for-me', 3, {'namespace': '/chat'}),
            (b, 'missed', 3, {'to': sid})]:
        node.sio.emit(event, n, **opts)
        assert node.mgr.flush()


def _check_missed(client):
    client.wait_for(lambda ln: ln.get('event') == 'missed' and
                    ln['args'][0] == 3)
    missed = _events(client, 'missed')
    assert [args[0] for args in missed] == [1, 2, 3]
    offsets = [tuple(map(int, args[1].split('-'))) for args in missed]
    assert offsets == sorted(offsets) and len(set(offsets)) == 3
    assert _events(client, 'not-for-me') == _events(client, 'before') == []


def test_a_quiet_client_recovers_on_the_same_server(csr_nodes, js_clients):
    """No offset received: it reconnects with ``{pid}`` alone and gets
    what it missed, none of what was sent before it connected."""
    a, b = csr_nodes
    client = _quiet_client(a, b, js_clients)
    sid = client.sid
    back = _drop_and_return(client)
    _missed_while_away(a, b, sid)
    line = back()
    assert line['recovered'] is True and line['id'] == sid
    wait_until(lambda: a.mgr.is_recovered(sid), 5, 'the replay')
    _check_missed(client)
    b.sio.emit('live', 4, to='room1')
    client.wait_for('live')
    a.sio.emit('live', 5)
    client.wait_for(lambda ln: ln.get('event') == 'live' and
                    ln['args'][0] == 5)
    assert [args[0] for args in _events(client, 'live')] == [4, 5]
    assert [args[0] for args in _events(client, 'missed')] == [1, 2, 3]


def test_a_quiet_client_recovers_on_another_server(csr_nodes, js_clients,
                                                   redis_server):
    a, b = csr_nodes
    client = _quiet_client(a, b, js_clients)
    sid = client.sid
    a.sio.save_session(sid, {'user': 'ann'})
    _away(client, redis_server)
    _missed_while_away(a, b, sid)
    line = _back(client, b.url)
    assert line['recovered'] is True and line['id'] == sid
    wait_until(lambda: b.mgr.is_recovered(sid), 5, 'the replay')
    assert set(b.sio.rooms(sid)) == {sid, 'room1'}
    assert b.sio.get_session(sid) == {'user': 'ann'}
    _check_missed(client)
    a.sio.emit('live', 4, to='room1')
    client.wait_for('live')


def test_a_quiet_client_recovers_twice_in_a_row(csr_nodes, js_clients):
    a, b = csr_nodes
    client = _quiet_client(a, b, js_clients)
    sid = client.sid
    assert _drop_and_return(client)()['recovered'] is True
    back = _drop_and_return(client)
    _missed_while_away(a, b, sid)
    line = back()
    assert line['recovered'] is True and line['id'] == sid
    _check_missed(client)


def test_a_quiet_client_gets_no_volatile_packet_replayed(
        csr_nodes, js_clients, redis_server):
    """A Node server's volatile broadcast sent while a quiet client was
    away is not replayed to it; what follows it is."""
    from .nodejs import NodeServer
    a, b = csr_nodes
    node_server = NodeServer(redis_server.url)
    try:
        client = _quiet_client(a, b, js_clients)
        back = _drop_and_return(client)
        node_server.command('emit', event='vol', args=[1], volatile=True)
        node_server.command('emit', event='missed', args=[2])
        assert back()['recovered'] is True
        client.wait_for('missed')
        assert _events(client, 'vol') == []
        assert [args[0] for args in _events(client, 'missed')] == [2]
    finally:
        node_server.stop()


def test_a_quiet_client_of_a_stream_that_did_not_exist_yet_recovers(
        make_node, js_clients):
    """It connected before the stream existed (its start is ``0-0``)."""
    a = make_node(**CSR)
    client = js_clients(a.url)
    back = _drop_and_return(client)
    a.sio.emit('missed', 1)
    assert a.mgr.flush()
    assert back()['recovered'] is True
    client.wait_for('missed')
    assert [args[0] for args in _events(client, 'missed')] == [1]


def test_a_quiet_client_of_a_trimmed_stream_gets_a_fresh_session(
        make_node, js_clients, redis_server):
    a = make_node(max_len=10, **CSR)
    client = js_clients(a.url)
    _away(client, redis_server)  # (back only once the stream is trimmed)
    for i in range(500):
        a.sio.emit('flood', i)
    assert a.mgr.flush()
    assert _back(client, a.url)['recovered'] is False


def test_the_replay_starts_exactly_where_live_delivery_started(
        csr_nodes, js_clients, redis_server):
    """Both servers broadcast while the client connects (local emits are
    delivered by the publisher, remote ones by the reader). A client that
    then forgets its offset is replayed exactly what reached it live: no
    packet from before it connected, none it was sent missing."""
    import threading
    a, b = csr_nodes
    stop = threading.Event()

    def pump():
        i = 0
        while not stop.is_set():
            (a if i % 2 else b).sio.emit('n', i)
            i += 1
            stop.wait(0.003)

    r = redis_server.client(decode_responses=True)
    thread = threading.Thread(target=pump)
    thread.start()
    try:  # some in the stream before the client comes (a loaded machine
        # could otherwise connect it before the first reached Redis)
        wait_until(lambda: r.xlen('socket.io') >= 3, 5, 'broadcasts')
        client = js_clients(a.url)
        client.wait_for(lambda _: len(client.events('n')) >= 5)
    finally:
        stop.set()
        thread.join()
    assert a.mgr.flush() and b.mgr.flush()
    stream = [entry_id for entry_id, _ in r.xrange('socket.io')]

    def key(offset):
        return tuple(map(int, offset.split('-')))

    def live():
        return sorted((args[1] for args in _events(client, 'n')), key=key)

    wait_until(lambda: live() == [e for e in stream
                                  if key(e) >= key(live()[0])],
               5, 'every broadcast after the first to reach the client')
    assert stream[0] != live()[0]  # some were sent before it connected
    received = live()
    client.command('forget_offset')
    _away(client, redis_server)
    count = len(client.events('n'))
    assert _back(client, b.url)['recovered'] is True
    b.sio.emit('mark', 0)  # after the replayed packets
    client.wait_for('mark')
    replayed = [args[1] for args in _events(client, 'n')[count:]]
    assert replayed == received


def _paused(obj, name, when=lambda *args: True):
    """Make ``obj.name`` (a task's step: real work, on real Redis) wait,
    when called with arguments ``when`` accepts, until the returned event
    is set: a delay at a chosen point."""
    release = threading.Event()
    setattr(obj, name, waiting_first(getattr(obj, name), lambda *args: (
        release.wait(10) if when(*args) else None)))
    return release


def _nothing_live(node, client):
    """What was sent to ``client`` before an acknowledged emit (which
    carries no offset) reached it: no broadcast."""
    client.command('answer', event='ask', value='ok')
    assert node.sio.call('ask', 1, to=client.sid, timeout=5) == 'ok'
    client.wait_for('ask')  # its answer may come before its report line
    assert [line['event'] for line in client.lines
            if 'event' in line] == ['connect', 'ask']


def _connect_then_release(a, sender, watcher, release, js_clients):
    """A client connects to ``a`` while ``release`` holds 'before';
    then 'before' goes on: the client gets it neither live nor replayed
    after a drop, only what ``sender`` emits while it is away."""
    client = js_clients(a.url)
    release.set()
    sender.sio.emit('sync', 0, to=watcher.sid)  # after 'before' went on
    watcher.wait_for('sync')
    _nothing_live(a, client)
    back = _drop_and_return(client)
    sender.sio.emit('missed', 1)
    assert sender.mgr.flush()
    assert back()['recovered'] is True
    client.wait_for('missed')
    assert _events(client, 'before') == []
    assert [args[0] for args in _events(client, 'missed')] == [1]


def test_a_local_emit_in_the_stream_before_a_client_connected_skips_it(
        csr_nodes, js_clients, redis_server):
    """The reader is past a local emit whose XADD reply is still on its
    way when the client connects: it was before the client, so the
    client gets it neither live nor replayed."""
    a, _b = csr_nodes
    watcher = js_clients(a.url)
    # the XADD's delivery only (not a PUBLISH's: on a cluster a batch
    # goes to one node, and one before the XADD would hold it back)
    release = _paused(a.mgr._links.publisher, '_deliver',
                      lambda batch, replies: any(
                          item.kind == 'xadd' for item in batch))
    a.sio.emit('before', 0)
    r = redis_server.client()
    (entry_id,) = wait_until(lambda: r.xrange('socket.io'), 5, 'the XADD')
    reader = a.mgr._links.readers['socket.io']
    wait_until(lambda: reader.last_id == entry_id[0].decode(), 5,
               'the reader to read it')
    _connect_then_release(a, a, watcher, release, js_clients)


def test_broadcasts_decided_before_a_client_connected_skip_it(
        csr_nodes, js_clients):
    """The reader waits on a remote entry while a later local emit has
    been delivered when the client connects: both were before it."""
    a, b = csr_nodes
    watcher = js_clients(a.url)
    reader = a.mgr._links.readers['socket.io']
    release = _paused(reader, '_handle')
    b.sio.emit('before', 'remote')
    assert b.mgr.flush()
    wait_until(lambda: reader.last_id != '0-0', 5, 'the reader to read it')
    a.sio.emit('before', 'local')
    watcher.wait_for('before')
    _connect_then_release(a, b, watcher, release, js_clients)
