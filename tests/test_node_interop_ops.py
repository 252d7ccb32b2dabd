"""Cluster-wide operations across Python and Node.js servers on one Redis.

Node's ``fetchSockets`` / ``serverSideEmit(WithAck)`` / ``serverCount``
against Python servers, Python's ``fetch_sockets`` / ``server_side_emit`` /
``emit_with_ack`` / ``server_count`` against Node servers (Socket.IO 4.8.4
with the official ``@socket.io/redis-streams-adapter`` 0.3.1), and
connection state recovery from a server of one kind to one of the other.
Fixtures and helpers: ``tests/interop.py``.
"""
from __future__ import annotations

import re
import shutil
import threading

import pytest

from socketio_streams import AckTimeoutError

from .interop import (disconnect_reason, emit, got, join, js_rooms, js_socket,
                      mark, wait_got)
from .nodes import NAMESPACES, wait_until

if shutil.which('node') is None or shutil.which('npm') is None:
    pytest.skip('the Node.js interoperability tests need node (20+) and '
                'npm on PATH (apt-get install nodejs npm)',
                allow_module_level=True)

#: the keys of Node's ``socket.handshake`` (WIRE.md 3.1, captured)
HANDSHAKE_KEYS = {'headers', 'time', 'address', 'xdomain', 'secure',
                  'issued', 'url', 'query', 'auth'}
OFFSET = re.compile(r'^[0-9]+-[0-9]+$')
CSR = {'connection_state_recovery': {'max_disconnection_duration': 30}}


@pytest.fixture
def ready(py_client):
    """``ready(node, namespaces=('/',))`` makes a Python server join the
    cluster now: python-socketio initializes its manager (which then
    subscribes, and so counts for Node) at the first connection. The
    connected client is returned."""
    def make(node, namespaces=('/',)):
        return py_client(node.url, list(namespaces))
    return make


def by_id(sockets: list, key: str = 'id') -> dict:
    return {s[key] if isinstance(s, dict) else getattr(s, key): s
            for s in sockets}


def check_handshake(handshake: dict, like: dict, port: int,
                    auth: dict) -> None:
    """A handshake has Node's keys, with values of the types Node gives
    (``like``: a Node socket's), the server's host and the client's auth."""
    assert set(handshake) == HANDSHAKE_KEYS == set(like)
    for key in HANDSHAKE_KEYS:
        assert type(handshake[key]) is type(like[key]), key
    assert handshake['headers']['host'] == f'127.0.0.1:{port}'
    assert handshake['url'].startswith('/socket.io/?')
    assert handshake['query']['EIO'] == '4'
    assert handshake['query']['transport'] == 'websocket'
    assert handshake['auth'] == auth
    assert handshake['time'].endswith('(Coordinated Universal Time)')
    assert handshake['issued'] > 1_600_000_000_000  # ms since the epoch


# --- Node fetchSockets() of Python servers' sockets --------------------------

@pytest.mark.every_deployment
def test_node_fetch_sockets_returns_python_server_sockets(
        py, js, py_client, js_client):
    """``io.fetchSockets()`` from Node lists the sockets of a Python server
    with their id, rooms (own id included), ``data`` (the python-socketio
    session) and a handshake shaped as Node's.
    In each namespace, on the same servers."""
    for namespace in NAMESPACES:
        port = int(py.url.rsplit(':', 1)[1])
        on_py = py_client(py.url, [namespace], auth={'user': 'ann'})
        on_py_js = js_client(py.url, namespace, auth={'token': 't'})
        on_js = js_client(js.url, namespace, auth={'data': {'who': 'node'}})
        py_sid, js_sid = on_py.sid(namespace), on_py_js.sid
        # (the test servers' 'join' event handler joins in '/' only)
        for sid, room in ((py_sid, 'red'), (js_sid, 'red'), (js_sid, 'blue')):
            py.sio.enter_room(sid, room, namespace=namespace)
        session = {'user': 'ann', 'n': 1, 'raw': b'\x01\xff'}
        py.sio.save_session(py_sid, session, namespace=namespace)
        found = by_id(js.command('fetchSockets', namespace=namespace))
        assert set(found) == {py_sid, js_sid, on_js.sid}
        node_handshake = found[on_js.sid]['handshake']
        assert found[py_sid]['data'] == session
        assert found[js_sid]['data'] == {}  # as a fresh Node socket's
        assert found[on_js.sid]['data'] == {'who': 'node'}
        assert sorted(found[py_sid]['rooms']) == sorted([py_sid, 'red'])
        assert found[py_sid]['rooms'][0] == py_sid
        assert sorted(found[js_sid]['rooms']) == sorted(
            [js_sid, 'red', 'blue'])
        check_handshake(found[py_sid]['handshake'], node_handshake, port,
                        {'user': 'ann'})
        check_handshake(found[js_sid]['handshake'], node_handshake, port,
                        {'token': 't'})


def test_node_fetch_sockets_to_a_room_and_except_on_python_servers(
        make_node, js, py_client, js_client):
    """``io.to(room).fetchSockets()`` and ``.except(...)`` from Node select
    the sockets of Python servers by room and by sid or room."""
    a, b = make_node(), make_node()
    red_a, red_b = py_client(a.url), js_client(b.url)
    muted = py_client(b.url)
    plain = js_client(a.url)
    for client in (red_a, red_b, muted):
        join(client, 'red')
    join(muted, 'muted')
    sids = {'red_a': red_a.sid(), 'red_b': red_b.sid, 'muted': muted.sid(),
            'plain': plain.sid}
    name = {sid: key for key, sid in sids.items()}

    def fetch(**opts) -> set:
        return {name[s['id']] for s in js.command('fetchSockets', **opts)}

    assert fetch() == set(sids)
    assert fetch(to='red') == {'red_a', 'red_b', 'muted'}
    assert fetch(to=['muted', sids['plain']]) == {'muted', 'plain'}
    assert fetch(to='red', **{'except': ['muted']}) == {'red_a', 'red_b'}
    assert fetch(**{'except': [sids['red_a'], 'muted']}) == \
        {'red_b', 'plain'}
    assert fetch(to='nobody') == set()


# --- Python fetch_sockets() of Node servers' sockets -------------------------

def test_python_fetch_sockets_returns_node_server_sockets(
        py, js, ready, py_client, js_client):
    """``mgr.fetch_sockets()`` lists the sockets of a Node server with
    their sid, rooms, ``data`` (``socket.data``) and handshake.
    In each namespace, on the same servers."""
    for namespace in NAMESPACES:
        ready(py, [namespace])
        auth = {'rooms': ['red'], 'data': {'user': 'bob', 'n': 1}}
        on_js = js_client(js.url, namespace, auth=auth)
        on_js_py = py_client(js.url, [namespace], auth={'rooms': ['red', 'b']})
        found = by_id(py.mgr.fetch_sockets(namespace=namespace), 'sid')
        local = set(py.mgr.get_participants(namespace, None))
        on_js_py_sid = on_js_py.sid(namespace)
        assert set(found) == {on_js.sid, on_js_py_sid} | {s for s, _ in local}
        remote = found[on_js.sid]
        assert remote.namespace == namespace
        assert remote.rooms == {on_js.sid, 'red'}
        assert remote.data == {'user': 'bob', 'n': 1}
        assert found[on_js_py_sid].rooms == {on_js_py_sid, 'red', 'b'}
        assert found[on_js_py_sid].data == {}
        for sock in (remote, found[on_js_py_sid]):
            assert set(sock.handshake) == HANDSHAKE_KEYS
            assert sock.handshake['headers']['host'] == f'127.0.0.1:{js.port}'
            assert sock.handshake['query']['EIO'] == '4'
        assert remote.handshake['auth'] == auth
        assert found[on_js_py_sid].handshake['auth'] == {'rooms': ['red', 'b']}


def test_python_fetch_sockets_to_a_room_and_skip_sid_on_node_servers(
        py, make_js_server, ready, py_client, js_client):
    """``fetch_sockets(to=, skip_sid=)`` selects the sockets of Node
    servers by room and by sid or room."""
    ready(py)
    a, b = make_js_server(), make_js_server()
    clients = {'red_a': js_client(a.url, auth={'rooms': ['red']}),
               'red_b': py_client(b.url, auth={'rooms': ['red']}),
               'muted': js_client(b.url, auth={'rooms': ['red', 'muted']}),
               'plain': js_client(a.url)}
    name = {(c.sid if isinstance(c.sid, str) else c.sid()): key
            for key, c in clients.items()}

    def fetch(**opts) -> set:
        return {name[s.sid] for s in py.mgr.fetch_sockets(**opts)
                if s.sid in name}

    assert fetch() == set(clients)
    assert fetch(to='red') == {'red_a', 'red_b', 'muted'}
    assert fetch(to=['muted', clients['plain'].sid]) == {'muted', 'plain'}
    assert fetch(to='red', skip_sid='muted') == {'red_a', 'red_b'}
    assert fetch(skip_sid=[clients['red_a'].sid, 'muted']) == \
        {'red_b', 'plain'}
    assert fetch(to='nobody') == set()


def test_python_remote_socket_acts_on_the_node_server_socket(
        py, js, ready, js_client):
    """A ``RemoteSocket`` of a Node server's socket: ``emit`` reaches that
    client only; ``join`` / ``leave`` change its rooms on the Node server;
    ``disconnect`` disconnects it there, and no other."""
    ready(py)
    target = js_client(js.url, auth={'rooms': ['red']})
    bystander = js_client(js.url, auth={'rooms': ['red']})
    (remote,) = py.mgr.fetch_sockets(to=target.sid)
    assert remote.sid == target.sid
    remote.emit('direct', {'n': 1})
    remote.join('blue')
    remote.leave('red')
    mark(py, [target, bystander])
    assert got(target, 'direct') == [[{'n': 1}]]
    assert got(bystander, 'direct') == []
    assert js_rooms(js, target.sid) == {target.sid, 'blue'}
    assert js_rooms(js, bystander.sid) == {bystander.sid, 'red'}
    emit(js, 'paint', 'blue', to='blue')
    emit(js, 'paint', 'red', to='red')
    mark(js, [target, bystander])
    assert got(target, 'paint') == [['blue']]
    assert got(bystander, 'paint') == [['red']]
    remote.disconnect()
    assert disconnect_reason(target) == 'io server disconnect'
    js.wait_for(lambda line: line.get('disconnect') == target.sid)
    mark(py, [bystander])
    assert bystander.command('state')['connected']
    assert [s.sid for s in py.mgr.fetch_sockets(to='red')] == \
        [bystander.sid]


# --- Node serverSideEmit() to Python handlers --------------------------------

def recorder(node, event: str, namespace: str = '/', reply=None) -> list:
    """Register ``@mgr.on(event)`` on a Python server; the list of the
    argument lists it is called with. It returns ``reply(*args)``."""
    calls: list = []

    def handler(*args):
        calls.append(list(args))
        return reply(*args) if reply else None

    node.mgr.on(event, handler, namespace=namespace)
    return calls


def test_node_server_side_emit_reaches_python_handlers(
        make_node, js, ready):
    """``io.serverSideEmit(event, ...args)`` from Node calls the
    ``@mgr.on(event)`` handler of every Python server with the args (bytes
    as bytes), in the namespace it was sent in only."""
    a, b = make_node(), make_node()
    for node in (a, b):
        ready(node, ['/', '/chat'])
    hello = [recorder(a, 'hello'), recorder(b, 'hello')]
    chat_hello = recorder(a, 'hello', '/chat')
    chat_marks = recorder(a, 'mark', '/chat')
    args = ['world', 1, {'x': [1, 2.5, None]}, b'\x00\xff']
    js.command('serverSideEmit', event='hello', args=args)
    for calls in hello:
        wait_until(lambda c=calls: c, 5, 'the handler to be called')
    # PUB/SUB messages from one connection arrive in order
    js.command('serverSideEmit', event='mark', args=[1], namespace='/chat')
    wait_until(lambda: chat_marks, 5, 'the /chat marker')
    assert hello == [[args], [args]]
    assert chat_hello == []


def test_node_server_side_emit_with_ack_gets_python_handlers_answers(
        make_node, make_js_server, ready):
    """``io.serverSideEmitWithAck`` from Node resolves with the return
    value of every Python server's handler (and other Node servers'
    acks); a Python server without a handler answers ``null``."""
    a, b, silent = make_node(), make_node(), make_node()
    js, other_js = make_js_server(), make_js_server()
    for node in (a, b, silent):
        ready(node)
    calls = recorder(a, 'ping', reply=lambda x, blob: f'a-{x}')
    recorder(b, 'ping', reply=lambda x, blob: {'b': x, 'raw': blob + b'!'})
    other_js.command('onServerSideEmit', event='ping', reply='node')
    assert js.command('serverCount') == 5
    result = js.command('serverSideEmit', event='ping', args=[3, b'\x01'],
                        ack=True)
    assert calls == [[3, b'\x01']]
    assert sorted(result, key=repr) == sorted(
        ['a-3', {'b': 3, 'raw': b'\x01!'}, 'node', None], key=repr)


# --- Python server_side_emit() to Node handlers ------------------------------

def test_python_server_side_emit_reaches_node_handlers_not_the_sender(
        make_node, make_js_server, ready):
    """``mgr.server_side_emit(event, ...)`` reaches the ``io.on(event)``
    handlers of every Node server (bytes as Buffers) and other Python
    servers' handlers, not the sender's own."""
    sender, other = make_node(), make_node()
    ready(sender)
    ready(other)
    nodes = [make_js_server(), make_js_server()]
    for server in nodes:
        server.command('onServerSideEmit', event='hello')
    own, others = recorder(sender, 'hello'), recorder(other, 'hello')
    own_marks = recorder(sender, 'mark')
    args = ['world', 1, {'x': [True, None]}, b'\x00\xff']
    sender.mgr.server_side_emit('hello', *args)
    for server in nodes:
        line = server.wait_for('hello')
        assert line['args'] == args and line['ack'] is False
        assert line['namespace'] == '/'
    wait_until(lambda: others, 5, 'the other Python handler')
    assert others == [args]
    # the sender's echo of 'hello' came before this: one Redis, in order
    other.mgr.server_side_emit('mark', 1)
    wait_until(lambda: own_marks, 5, 'the marker at the sender')
    assert own == []


@pytest.mark.every_deployment
def test_python_server_side_emit_callback_gets_node_acks(
        make_node, make_js_server, ready):
    """``mgr.server_side_emit(..., callback=)`` gets the ack of every Node
    server's handler and the other Python servers' answers, bytes
    included, without error."""
    sender, other = make_node(), make_node()
    ready(sender)
    ready(other)
    a, b = make_js_server(), make_js_server()
    a.command('onServerSideEmit', event='ping', reply={'from': 'a'})
    b.command('onServerSideEmit', event='ping', reply={'$bin_hex': '00ff'})
    recorder(other, 'ping', reply=lambda x: f'py-{x}')
    outcome: list = []
    done = threading.Event()

    def callback(err, responses):
        outcome.append((err, responses))
        done.set()

    sender.mgr.server_side_emit('ping', 5, callback=callback, timeout=5)
    assert done.wait(10)
    ((err, responses),) = outcome
    assert err is None
    assert sorted(responses, key=repr) == sorted(
        [{'from': 'a'}, b'\x00\xff', 'py-5'], key=repr)
    for server in (a, b):
        line = server.wait_for('ping')
        assert line['args'] == [5] and line['ack'] is True


def test_python_server_side_emit_callback_times_out_on_a_silent_node(
        py, make_js_server, ready):
    """A Node handler that never acks: the callback gets an
    ``AckTimeoutError`` after ``timeout``, with the answers that came."""
    ready(py)
    answering, silent = make_js_server(), make_js_server()
    answering.command('onServerSideEmit', event='ping', reply='yes')
    silent.command('onServerSideEmit', event='ping')  # no ack
    outcome: list = []
    done = threading.Event()

    def callback(err, responses):
        outcome.append((err, responses))
        done.set()

    py.mgr.server_side_emit('ping', callback=callback, timeout=2)
    assert done.wait(10)
    ((err, responses),) = outcome
    assert isinstance(err, AckTimeoutError)
    assert responses == err.responses == ['yes']
    assert silent.wait_for('ping')['ack'] is True


# --- Python emit_with_ack() to clients of Node servers -----------------------

def test_python_emit_with_ack_collects_answers_from_node_server_clients(
        make_node, make_js_server, py_client, js_client):
    """``mgr.emit_with_ack`` gets the answer of every client of every Node
    server (Node and Python clients) and of Python servers, and returns as
    soon as all are in, even with a Node server that has no client.
    In each namespace, on the same servers."""
    sender, b = make_node(), make_node()
    js, empty_js = make_js_server(), make_js_server()
    for namespace in NAMESPACES:
        nss = [namespace]
        py_client(sender.url, nss, answers={'ask': lambda x: f'local-{x}'})
        py_client(js.url, nss, answers={'ask': lambda x: f'js-py-{x}'})
        py_client(b.url, nss, answers={'ask': lambda x: f'b-py-{x}'})
        for url, value in ((js.url, 'js-js'), (js.url, 'js-js2'),
                           (b.url, 'b-js')):
            js_client(url, namespace).command('answer', event='ask',
                                              value=value)
        assert empty_js.command('serverCount', namespace=namespace) == 4
        answers = sender.mgr.emit_with_ack('ask', 5, namespace=namespace,
                                           timeout=10)
        assert sorted(answers) == ['b-js', 'b-py-5', 'js-js', 'js-js2',
                                   'js-py-5', 'local-5']


def test_python_emit_with_ack_to_a_room_and_skip_sid_on_a_node_server(
        py, js, py_client, js_client):
    """``emit_with_ack(to=room, skip_sid=...)`` asks only the matching
    clients of a Node server; the others get nothing."""
    member = js_client(js.url, auth={'rooms': ['vip']})
    member.command('answer', event='ask', value='member')
    member_py = py_client(js.url, auth={'rooms': ['vip']},
                          answers={'ask': lambda x: ['member-py', x]})
    excluded = js_client(js.url, auth={'rooms': ['vip']})
    excluded.command('answer', event='ask', value='excluded')
    outsider = py_client(js.url, answers={'ask': lambda x: 'outsider'})
    answers = py.mgr.emit_with_ack('ask', 1, to='vip',
                                   skip_sid=excluded.sid, timeout=10)
    assert sorted(answers, key=repr) == sorted(
        ['member', ['member-py', 1]], key=repr)
    mark(py, [member, member_py, excluded, outsider])
    assert got(excluded, 'ask') == got(outsider, 'ask') == []


def test_python_emit_with_ack_and_no_matching_node_client(
        py, js, js_client):
    """Node servers with no matching client answer a count of 0: the
    result is ``[]`` at once, not an ``AckTimeoutError``."""
    js_client(js.url)
    assert py.mgr.emit_with_ack('ask', to='nobody', timeout=10) == []


def test_python_emit_with_ack_carries_binary_both_ways_via_node(
        py, js, py_client):
    """Bytes in ``emit_with_ack`` reach a client of a Node server as bytes,
    and bytes in its answer come back as bytes."""
    py_client(js.url, answers={'blob': lambda x: {'raw': x + b'!'}})
    assert py.mgr.emit_with_ack('blob', b'\x00\xff', timeout=10) == \
        [{'raw': b'\x00\xff!'}]


def test_python_emit_with_ack_times_out_on_a_silent_node_client(
        py, js, js_client):
    """A Node server's client that does not ack: ``AckTimeoutError`` after
    ``timeout``, ``.responses`` holding the answers that came."""
    answering = js_client(js.url)
    answering.command('answer', event='ask', value='yes')
    silent = js_client(js.url)  # gets the event, never acks
    with pytest.raises(AckTimeoutError) as info:
        py.mgr.emit_with_ack('ask', 1, timeout=2)
    assert info.value.responses == ['yes']
    assert silent.wait_for('ask')['ack'] is True


# --- server counts -----------------------------------------------------------

@pytest.mark.every_deployment
def test_server_count_agrees_on_a_mixed_cluster(
        make_node, make_js_server, ready):
    """``mgr.server_count()`` and Node's ``serverCount()`` agree on a
    cluster of 2 Python and 2 Node servers, in '/' and '/chat', and both
    follow a server of each kind leaving."""
    a, b = make_node(), make_node()
    for node in (a, b):
        ready(node, ['/', '/chat'])
    js, leaving_js = make_js_server(), make_js_server()

    def counts(namespace: str = '/') -> list:
        return [a.mgr.server_count(namespace), b.mgr.server_count(namespace),
                js.command('serverCount', namespace=namespace),
                leaving_js.command('serverCount', namespace=namespace)]

    assert counts() == counts('/chat') == [4, 4, 4, 4]
    leaving_js.stop()
    wait_until(lambda: [a.mgr.server_count(), b.mgr.server_count(),
                        js.command('serverCount')] == [3, 3, 3], 5,
               'the Node server to leave')
    b.mgr.close()
    wait_until(lambda: [a.mgr.server_count('/chat'),
                        js.command('serverCount', namespace='/chat')] ==
               [2, 2], 5, 'the Python server to leave')
    assert [a.mgr.server_count(), js.command('serverCount')] == [2, 2]


# --- connection state recovery across kinds ----------------------------------

def drop(client, redis_server) -> str:
    """Close a Node client's transport (its server sees 'transport close')
    and keep it away; wait until its server stored the session. The
    session's pid."""
    client.command('close_transport', hold=True)
    client.wait_for(lambda line: line.get('event') == 'disconnect')
    r = redis_server.client(decode_responses=True)
    (key,) = wait_until(lambda: list(r.scan_iter('sio:session:*')), 5,
                        'the session to be stored')
    return key[len('sio:session:'):]


def in_stream(redis_server, *needles: str) -> None:
    """Wait until the stream holds an entry containing each needle (a
    Node emit is written after its command returns)."""
    r = redis_server.client(decode_responses=True)

    def written() -> bool:
        data = [f.get('data', '') for _id, f in r.xrange('socket.io')]
        return all(any(n in d for d in data) for n in needles)

    wait_until(written, 5, f'{needles} in the stream')


def come_back(client, url: str) -> dict:
    """Reconnect a held client to ``url``; its new ``connect`` line."""
    before = len(client.events('connect'))
    client.command('connect', url=url)
    client.wait_for(lambda line: line.get('event') == 'connect' and
                    len(client.events('connect')) > before, 10)
    return client.events('connect')[-1]


def missed_while_away(sender_py, sender_js, sid: str,
                      redis_server) -> None:
    """Broadcasts for and not for a client in 'red' (not 'blue'),
    alternating between a Python and a Node server; each is in the stream
    before the next is sent, so the stream has them in this order."""
    sends = [(sender_js, 'missed', 1, {}),
             (sender_py, 'missed', 2, {'to': 'red'}),
             (sender_js, 'not-for-me', 1, {'to': 'blue'}),
             (sender_py, 'not-for-me', 2, {'skip_sid': 'red'}),
             (sender_js, 'not-for-me', 3, {'namespace': '/chat'}),
             (sender_py, 'missed', 3, {'to': sid}),
             (sender_js, 'missed', 4, {'to': ['red', 'blue']}),
             (sender_py, 'not-for-me', 4, {'namespace': '/chat'})]
    for server, event, n, opts in sends:
        emit(server, event, n, **opts)
        in_stream(redis_server, f'"{event}",{n}]')


def check_missed(client) -> None:
    """The client got what it missed, in order, each with its offset,
    and nothing else."""
    missed = got(client, 'missed')
    assert [args[0] for args in missed] == [1, 2, 3, 4]
    assert all(len(args) == 2 and OFFSET.match(args[1]) for args in missed)
    offsets = [tuple(map(int, args[1].split('-'))) for args in missed]
    assert offsets == sorted(offsets)
    assert got(client, 'not-for-me') == []


@pytest.mark.every_deployment
def test_recovery_from_a_node_server_to_a_python_server(
        make_node, make_js_server, js_client, redis_server):
    """A client of a Node server (recovery on) that lost its transport
    reconnects to a Python server (``connection_state_recovery``):
    recovered, same id, rooms and ``data`` back, and every packet it
    missed from either kind of server, in order, then live ones."""
    js = make_js_server(recovery_ms=30_000)
    py = make_node(**CSR)
    data = {'user': 'bob', 'n': 1}
    client = js_client(js.url, auth={'rooms': ['red'], 'data': data})
    sid = client.sid
    emit(js, 'before', 0)
    assert OFFSET.match(wait_got(client, 'before')[0][-1])
    drop(client, redis_server)
    missed_while_away(py, js, sid, redis_server)
    line = come_back(client, py.url)
    assert line['recovered'] is True and line['id'] == sid
    mark(py, [client])  # after the replayed packets
    check_missed(client)
    assert py.mgr.is_recovered(sid)
    assert set(py.sio.rooms(sid)) == {sid, 'red'}
    assert py.sio.get_session(sid) == data
    emit(js, 'live', 5, to='red')
    assert wait_got(client, 'live')[0][0] == 5


@pytest.mark.every_deployment
def test_recovery_from_a_python_server_to_a_node_server(
        make_node, make_js_server, js_client, redis_server):
    """A client of a Python server (``connection_state_recovery``) that
    lost its transport reconnects to a Node server (recovery on):
    recovered, same id, rooms and session (as ``socket.data``) back, and
    every packet it missed from either kind of server, in order."""
    py = make_node(**CSR)
    js = make_js_server(recovery_ms=30_000)
    client = js_client(py.url)
    sid = client.sid
    join(client, 'red')
    session = {'user': 'ann', 'n': 2, 'raw': b'\x00\xff'}
    py.sio.save_session(sid, session)
    emit(py, 'before', 0)
    assert OFFSET.match(wait_got(client, 'before')[0][-1])
    drop(client, redis_server)
    missed_while_away(py, js, sid, redis_server)
    line = come_back(client, js.url)
    assert line['recovered'] is True and line['id'] == sid
    mark(js, [client])  # after the replayed packets
    check_missed(client)
    sock = js_socket(js, sid)
    assert sorted(sock['rooms']) == sorted([sid, 'red'])
    assert sock['data'] == session
    emit(py, 'live', 5, to='red')
    assert wait_got(client, 'live')[0][0] == 5


@pytest.mark.parametrize('first', ['node', 'python'])
def test_a_quiet_client_across_kinds_gets_a_fresh_session(
        make_node, make_js_server, js_client, redis_server, first):
    """A client that received no broadcast comes back with ``{pid}`` and
    no offset. A session a Node server stored has no ``offset`` of ours
    (a Python server cannot tell what the client missed), and a Node
    server restores only from a client's offset: a fresh session either
    way, as before (between Python servers it recovers)."""
    js = make_js_server(recovery_ms=30_000)
    py = make_node(**CSR)
    origin, other = (js, py) if first == 'node' else (py, js)
    client = js_client(origin.url)
    sid = client.sid
    drop(client, redis_server)
    emit(origin, 'missed', 1)
    in_stream(redis_server, '"missed",1]')
    line = come_back(client, other.url)
    assert line['recovered'] is False and line['id'] != sid
    mark(other, [client])
    assert got(client, 'missed') == []
