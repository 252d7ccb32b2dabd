"""Python and Node.js servers on one Redis form one Socket.IO cluster.

The Node side is Socket.IO 4.8.4 with the official
``@socket.io/redis-streams-adapter`` 0.3.1 (``tests/js/server.js``) and the
official socket.io-client (``tests/js/client.js``), driven through
``tests/nodejs.py``. Clients of both kinds sit on servers of both kinds.
Fixtures and helpers are in ``tests/interop.py`` (shared with
``test_node_interop_ops.py``).

Negative checks ("this client got nothing") wait for a marker emitted by
the same server after the packet under test: one server's packets reach
every client in order, so once the marker is in, the packet would be too.
"""
from __future__ import annotations

import json
import shutil
import socket
import threading

import pytest
import websocket

from .interop import (ACK_TIMEOUT_MS, disconnect_reason, emit, got, join,
                      js_rooms, mark, stream_entries, wait_got)
from .nodes import NAMESPACES, wait_until

if shutil.which('node') is None or shutil.which('npm') is None:
    pytest.skip('the Node.js interoperability tests need node (20+) and '
                'npm on PATH (apt-get install nodejs npm)',
                allow_module_level=True)


# --- the Node peers themselves -----------------------------------------------

def test_a_stopped_node_server_leaves_no_redis_connection(redis_server,
                                                          make_js_server):
    """Node servers share one process (``tests/nodejs.py: host``): one that
    is stopped drops every connection it made, as its own process would
    by exiting, and no later test meets it."""
    store = redis_server.client()

    def ours() -> list:
        return [c for c in store.client_list()
                if c['name'].startswith('sio-node-')]

    server = make_js_server(stream_count=2)
    assert len(ours()) >= 4  # the publisher, two readers, the subscriber
    server.stop()
    wait_until(lambda: not ours(), 5, 'its connections to close')


# --- broadcasts --------------------------------------------------------------

ARGS = ({'n': 1, 'text': 'héllo'}, 'two', [1, 2.5, None, True])


def test_python_broadcast_reaches_every_client_of_a_node_server(
        py, js, py_client, js_client):
    """A Python server's broadcast reaches every client of a Node server
    (Python and Node clients) once, and its own clients."""
    receivers = [py_client(py.url), py_client(js.url), js_client(js.url)]
    emit(py, 'news', *ARGS)
    mark(py, receivers)
    for client in receivers:
        assert got(client, 'news') == [list(ARGS)]


def test_node_broadcast_reaches_every_client_of_python_servers(
        make_node, js, py_client, js_client):
    """A Node server's broadcast reaches every client, Python or Node, of
    every Python server once, and the Node server's own clients."""
    a, b = make_node(), make_node()
    receivers = [py_client(a.url), js_client(a.url), py_client(b.url),
                 js_client(b.url), js_client(js.url)]
    emit(js, 'news', *ARGS)
    mark(js, receivers)
    for client in receivers:
        assert got(client, 'news') == [list(ARGS)]


@pytest.mark.every_deployment
def test_two_node_servers_and_a_python_server_all_broadcast(
        py, make_js_server, py_client, js_client):
    """Every server of a mixed cluster reaches every client of the others,
    in the order it emitted."""
    servers = [py, make_js_server(), make_js_server()]
    receivers = [py_client(py.url), js_client(servers[1].url),
                 py_client(servers[2].url)]
    for i, server in enumerate(servers):
        for n in range(3):
            emit(server, 'from', i, n)
        mark(server, receivers)
    for client in receivers:
        for i in range(3):
            assert [a for a in got(client, 'from') if a[0] == i] == \
                [[i, 0], [i, 1], [i, 2]]


# --- rooms and except --------------------------------------------------------

def test_python_emit_to_a_room_reaches_only_members_on_a_node_server(
        py, js, py_client, js_client):
    """``emit(to=room)`` from Python reaches the members on a Node server,
    not the others."""
    members = [py_client(js.url, auth={'rooms': ['red']}),
               js_client(js.url, auth={'rooms': ['red']})]
    others = [py_client(js.url), js_client(js.url, auth={'rooms': ['blue']})]
    emit(py, 'color', 'red', to='red')
    mark(py, members + others)
    assert [got(c, 'color') for c in members] == [[['red']], [['red']]]
    assert [got(c, 'color') for c in others] == [[], []]


def test_node_emit_to_a_room_reaches_only_members_on_a_python_server(
        py, js, py_client, js_client):
    """``io.to(room).emit`` from Node reaches the members on a Python
    server, not the others."""
    members = [py_client(py.url), js_client(py.url)]
    others = [py_client(py.url), js_client(py.url)]
    for client in members:
        join(client, 'red')
    join(others[1], 'blue')
    emit(js, 'color', 'red', to='red')
    mark(js, members + others)
    assert [got(c, 'color') for c in members] == [[['red']], [['red']]]
    assert [got(c, 'color') for c in others] == [[], []]


def test_python_skip_sid_excludes_sockets_of_a_node_server(
        py, js, py_client, js_client):
    """``skip_sid`` (one sid or a list) from Python excludes those sockets
    on a Node server, alone or with ``to``."""
    skipped_py = py_client(js.url, auth={'rooms': ['red']})
    skipped_js = js_client(js.url, auth={'rooms': ['red']})
    kept = js_client(js.url, auth={'rooms': ['red']})
    outside = py_client(js.url)
    receivers = [skipped_py, skipped_js, kept, outside]
    emit(py, 'all-but', 1, skip_sid=skipped_js.sid)
    emit(py, 'red-but', 2, to='red',
         skip_sid=[skipped_py.sid(), skipped_js.sid])
    mark(py, receivers)
    assert [got(c, 'all-but') for c in receivers] == \
        [[[1]], [], [[1]], [[1]]]
    assert [got(c, 'red-but') for c in receivers] == [[], [], [[2]], []]


def test_node_except_excludes_sockets_and_rooms_of_a_python_server(
        py, js, py_client, js_client):
    """``except`` (sids and rooms) from Node excludes those sockets on a
    Python server, alone or with ``to``."""
    by_sid = py_client(py.url)
    by_room = js_client(py.url)
    kept = py_client(py.url)
    outside = js_client(py.url)
    for client in (by_sid, by_room, kept):
        join(client, 'red')
    join(by_room, 'muted')
    receivers = [by_sid, by_room, kept, outside]
    emit(js, 'all-but', 1, except_=[by_sid.sid(), 'muted'])
    emit(js, 'red-but', 2, to='red', except_=['muted'])
    mark(js, receivers)
    assert [got(c, 'all-but') for c in receivers] == \
        [[], [], [[1]], [[1]]]
    assert [got(c, 'red-but') for c in receivers] == \
        [[[2]], [], [[2]], []]


def test_python_emit_to_a_list_of_rooms_on_a_node_server(
        py, js, py_client, js_client):
    """``emit(to=[rooms])`` from Python reaches each member of any of the
    rooms on a Node server once, and nobody else."""
    receivers = [js_client(js.url, auth={'rooms': ['a']}),
                 py_client(js.url, auth={'rooms': ['a', 'b']}),
                 js_client(js.url, auth={'rooms': ['b', 'c']}),
                 py_client(js.url, auth={'rooms': ['c']})]
    emit(py, 'multi', 1, to=['a', 'b'])
    mark(py, receivers)
    assert [len(got(c, 'multi')) for c in receivers] == [1, 1, 1, 0]


def test_node_emit_to_a_list_of_rooms_on_a_python_server(
        py, js, py_client, js_client):
    """``io.to([rooms]).emit`` from Node reaches each member of any of the
    rooms on a Python server once, and nobody else."""
    receivers = [js_client(py.url), py_client(py.url), js_client(py.url),
                 py_client(py.url)]
    for client, rooms in zip(receivers, [['a'], ['a', 'b'], ['b', 'c'],
                                         ['c']]):
        for room in rooms:
            join(client, room)
    emit(js, 'multi', 1, to=['a', 'b'])
    mark(js, receivers)
    assert [len(got(c, 'multi')) for c in receivers] == [1, 1, 1, 0]


# --- namespaces ------------------------------------------------------------

def test_python_emit_in_chat_namespace_reaches_node_server_chat_only(
        py, js, py_client, js_client):
    """A Python emit in '/chat' reaches '/chat' clients of a Node server,
    not their '/' sockets nor '/' clients."""
    chat_js = js_client(js.url, '/chat')
    both_py = py_client(js.url, ['/', '/chat'])
    root_js = js_client(js.url)
    emit(py, 'talk', 'hi', namespace='/chat')
    mark(py, [chat_js, both_py], namespace='/chat')
    mark(py, [both_py, root_js])
    assert got(chat_js, 'talk', '/chat') == [['hi']]
    assert got(both_py, 'talk', '/chat') == [['hi']]
    assert got(both_py, 'talk') == got(root_js, 'talk') == []


def test_node_emit_in_chat_namespace_reaches_python_server_chat_only(
        py, js, py_client, js_client):
    """A Node emit in '/chat' reaches '/chat' clients of a Python server,
    not their '/' sockets nor '/' clients."""
    chat_js = js_client(py.url, '/chat')
    both_py = py_client(py.url, ['/', '/chat'])
    root_js = js_client(py.url)
    emit(js, 'talk', 'hi', namespace='/chat')
    mark(js, [chat_js, both_py], namespace='/chat')
    mark(js, [both_py, root_js])
    assert got(chat_js, 'talk', '/chat') == [['hi']]
    assert got(both_py, 'talk', '/chat') == [['hi']]
    assert got(both_py, 'talk') == got(root_js, 'talk') == []


# --- binary ------------------------------------------------------------------

BLOB = {'raw': b'\x00\x01\xfe\xff', 'nested': [b'ab', {'deep': b'\x07'}],
        'text': 'é'}


@pytest.mark.every_deployment
def test_python_binary_broadcast_arrives_as_bytes_at_node_server_clients(
        py, js, py_client, js_client):
    """Bytes nested in a Python broadcast arrive as bytes at the clients of
    a Node server."""
    receivers = [js_client(js.url), py_client(js.url)]
    emit(py, 'blob', BLOB, b'\x10')
    mark(py, receivers)
    for client in receivers:
        assert got(client, 'blob') == [[BLOB, b'\x10']]


@pytest.mark.every_deployment
def test_node_binary_broadcast_arrives_as_bytes_at_python_server_clients(
        py, js, py_client, js_client):
    """Buffers nested in a Node broadcast arrive as bytes at the clients of
    a Python server."""
    receivers = [js_client(py.url), py_client(py.url)]
    emit(js, 'blob', BLOB, b'\x10')
    mark(js, receivers)
    for client in receivers:
        assert got(client, 'blob') == [[BLOB, b'\x10']]


# --- only_plaintext ----------------------------------------------------------

def test_python_only_plaintext_writes_json_that_node_reads_as_buffer_json(
        make_node, js, redis_server, py_client, js_client):
    """With ``only_plaintext`` Python writes JSON, and bytes reach Node
    clients as ``{"type": "Buffer", "data": [...]}`` as from Node; local
    clients still get bytes."""
    py = make_node(only_plaintext=True)
    local = py_client(py.url)
    remote = [js_client(js.url), py_client(js.url)]
    emit(py, 'plain', {'raw': b'\x01\x02\xff'})
    mark(py, [local, *remote])
    assert got(local, 'plain') == [[{'raw': b'\x01\x02\xff'}]]
    for client in remote:
        assert got(client, 'plain') == \
            [[{'raw': {'type': 'Buffer', 'data': [1, 2, 255]}}]]
    ours = [e['data'] for e in stream_entries(redis_server)
            if e['uid'] == py.mgr.uid and e['type'] == '3']
    assert ours and all(data.startswith('{') for data in ours)
    assert '{"type":"Buffer","data":[1,2,255]}' in ours[0]


def test_node_only_plaintext_buffers_reach_python_clients_as_buffer_json(
        py, make_js_server, py_client, js_client):
    """From a Node server with ``onlyPlaintext`` a Buffer reaches Python
    server clients as ``{"type": "Buffer", "data": [...]}``; that Node
    server still reads Python's binary entries as bytes."""
    js = make_js_server(only_plaintext=True)
    on_py = [py_client(py.url), js_client(py.url)]
    on_js = js_client(js.url)
    emit(js, 'plain', {'raw': b'\x01\x02\xff'})
    mark(js, on_py)
    for client in on_py:
        assert got(client, 'plain') == \
            [[{'raw': {'type': 'Buffer', 'data': [1, 2, 255]}}]]
    emit(py, 'bin', {'raw': b'\x01\x02\xff'})
    mark(py, [on_js])
    assert got(on_js, 'bin') == [[{'raw': b'\x01\x02\xff'}]]


# --- stream_count ------------------------------------------------------------

def test_stream_count_4_on_both_sides_uses_the_same_streams(
        make_node, make_js_server, redis_server, py_client, js_client):
    """With ``stream_count=4`` on both sides, Python and Node write the
    same stream keys and hear each other in '/' and '/chat'."""
    py = make_node(stream_count=4)
    js = make_js_server(stream_count=4)
    on_py = [py_client(py.url, ['/', '/chat'])]
    on_js_root, on_js_chat = js_client(js.url), js_client(js.url, '/chat')
    on_py.append(js_client(py.url, '/chat'))
    for ns in ('/', '/chat'):
        emit(py, 'py', ns, namespace=ns)
        emit(js, 'js', ns, namespace=ns)
    mark(py, [on_js_root, on_py[0]])
    mark(py, [on_js_chat, *on_py], namespace='/chat')
    mark(js, [on_py[0], on_js_root])
    mark(js, [*on_py, on_js_chat], namespace='/chat')
    assert got(on_js_root, 'py') == [['/']]
    assert got(on_js_chat, 'py', '/chat') == [['/chat']]
    assert got(on_py[0], 'js') == [['/']]
    assert got(on_py[0], 'js', '/chat') == [['/chat']]
    assert got(on_py[1], 'js', '/chat') == [['/chat']]
    # hashCode('/') % 4 == hashCode('/chat') % 4 == 3 (WIRE.md 2.1)
    r = redis_server.client(decode_responses=True)
    keys = set(r.scan_iter('socket.io*'))  # (and our readers' positions)
    assert {k for k in keys if r.type(k) == 'stream'} == {'socket.io-3'}
    assert keys <= {'socket.io-3', 'socket.io-3:readers'}
    writers = {e['uid'] for e in stream_entries(redis_server, 'socket.io-3')}
    assert py.mgr.uid in writers and len(writers) >= 3  # ours + Node's 2


# --- Node room operations on sockets of a Python server ----------------------

def test_node_sockets_join_adds_python_server_sockets_to_rooms(
        py, js, py_client, js_client):
    """``io.in(x).socketsJoin(rooms)`` from Node makes the matching sockets
    of a Python server join, and no others."""
    target_py, target_js = py_client(py.url), js_client(py.url)
    other = py_client(py.url)
    join(other, 'outsider')
    js.command('socketsJoin', to=[target_py.sid(), target_js.sid],
               rooms=['blue', 'green'])
    js.command('socketsJoin', to='nobody', rooms=['blue'])
    emit(js, 'paint', 'blue', to='blue')
    emit(js, 'paint', 'green', to='green')
    mark(js, [target_py, target_js, other])
    assert got(target_py, 'paint') == got(target_js, 'paint') == \
        [['blue'], ['green']]
    assert got(other, 'paint') == []
    assert {'blue', 'green'} <= set(py.sio.rooms(target_py.sid()))
    assert {'blue', 'green'} <= set(py.sio.rooms(target_js.sid))
    assert not {'blue', 'green'} & set(py.sio.rooms(other.sid()))


def test_node_sockets_leave_removes_python_server_sockets_from_rooms(
        py, js, py_client, js_client):
    """``io.in(x).socketsLeave(rooms)`` from Node makes the matching
    sockets of a Python server leave, and only them."""
    leaving_py, leaving_js = py_client(py.url), js_client(py.url)
    staying = py_client(py.url)
    for client in (leaving_py, leaving_js, staying):
        join(client, 'green')
    join(leaving_py, 'exit')
    join(leaving_js, 'exit')
    js.command('socketsLeave', to='exit', rooms=['green'])
    emit(js, 'paint', 'green', to='green')
    mark(js, [leaving_py, leaving_js, staying])
    assert got(leaving_py, 'paint') == got(leaving_js, 'paint') == []
    assert got(staying, 'paint') == [['green']]
    assert 'green' not in py.sio.rooms(leaving_py.sid())
    assert 'green' in py.sio.rooms(staying.sid())


@pytest.mark.parametrize('close, reason', [
    (False, 'io server disconnect'), (True, 'transport close')])
def test_node_disconnect_sockets_disconnects_python_server_sockets(
        py, js, py_client, js_client, close, reason):
    """``io.in(x).disconnectSockets(close)`` from Node disconnects the
    matching sockets of a Python server, and only them."""
    target_js, target_py = js_client(py.url), py_client(py.url)
    bystander = py_client(py.url)
    join(target_js, 'doomed')
    join(target_py, 'doomed')
    js.command('disconnectSockets', to='doomed', close=close)
    assert disconnect_reason(target_js) == reason
    wait_until(lambda: not target_py.sio.connected, 5, 'python disconnect')
    mark(js, [bystander])
    assert bystander.sio.connected
    assert not py.mgr.is_connected(target_js.sid, '/')


def test_node_disconnect_sockets_close_of_a_stuck_client_keeps_python_going(
        py, js, py_client):
    """``disconnectSockets(true)`` from Node, aimed at a Python server's
    client that has stopped reading, does not stop that server from
    receiving the cluster's packets."""
    bystander = py_client(py.url)
    url = py.url.replace('http', 'ws', 1)
    stuck = websocket.create_connection(
        url + '/socket.io/?EIO=4&transport=websocket', timeout=5,
        sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    try:
        assert stuck.recv().startswith('0')      # engine.io OPEN
        stuck.send('40')                         # socket.io CONNECT to /
        sid = json.loads(stuck.recv()[2:])['sid']
        stuck.send('421["join","doomed"]')
        assert stuck.recv() == '431[]'
        # it reads nothing more: fill the TCP buffers towards it
        for _ in range(32):
            py.sio.emit('flood', 'x' * (1 << 20), to=sid, ignore_queue=True)
        js.command('disconnectSockets', to='doomed', close=True)
        emit(js, 'after', 1)
        assert wait_got(bystander, 'after') == [[1]]
        wait_until(lambda: not py.mgr.is_connected(sid, '/'), 5,
                   'the stuck socket to be disconnected')
    finally:
        stuck.sock.close()


# --- Python room operations on sockets of a Node server ----------------------

def test_python_enter_room_for_a_socket_on_a_node_server(
        py, js, py_client, js_client):
    """``sio.enter_room`` of a Node server's socket makes it a member there:
    Python and Node emits to the room reach it, not others."""
    target, other = js_client(js.url), py_client(js.url)
    py.sio.enter_room(target.sid, 'vip')
    emit(py, 'vip-news', 'py', to='vip')
    mark(py, [target, other])
    emit(js, 'vip-news', 'js', to='vip')
    mark(js, [target, other])
    assert got(target, 'vip-news') == [['py'], ['js']]
    assert got(other, 'vip-news') == []
    assert 'vip' in js_rooms(js, target.sid)


def test_python_leave_room_for_a_socket_on_a_node_server(
        py, js, py_client, js_client):
    """``sio.leave_room`` of a Node server's socket removes it from the
    room there; other members stay."""
    leaving = js_client(js.url, auth={'rooms': ['vip']})
    staying = py_client(js.url, auth={'rooms': ['vip']})
    py.sio.leave_room(leaving.sid, 'vip')
    emit(py, 'vip-news', 1, to='vip')
    mark(py, [leaving, staying])
    assert got(leaving, 'vip-news') == []
    assert got(staying, 'vip-news') == [[1]]
    assert 'vip' not in js_rooms(js, leaving.sid)


def test_python_close_room_empties_it_on_a_node_server(
        py, js, py_client, js_client):
    """``sio.close_room`` removes every Node server socket from the room."""
    members = [js_client(js.url, auth={'rooms': ['doomed', 'kept']}),
               py_client(js.url, auth={'rooms': ['doomed']})]
    py.sio.close_room('doomed')
    emit(py, 'gone', 1, to='doomed')
    emit(py, 'kept', 1, to='kept')
    mark(py, members)
    assert [got(c, 'gone') for c in members] == [[], []]
    assert got(members[0], 'kept') == [[1]]
    assert js_rooms(js, members[0].sid) == {members[0].sid, 'kept'}


def test_python_disconnect_of_a_socket_on_a_node_server(
        py, js, py_client, js_client):
    """``sio.disconnect(sid)`` disconnects a Node server's socket (as the
    server would), and no other."""
    target = js_client(js.url)
    bystander = js_client(js.url)
    py.sio.disconnect(target.sid)
    assert disconnect_reason(target) == 'io server disconnect'
    js.wait_for(lambda line: line.get('disconnect') == target.sid)
    mark(js, [bystander])
    assert bystander.command('state')['connected']
    assert not bystander.events(lambda line: line.get('event') ==
                                'disconnect')


# --- Python acknowledgements from sockets on a Node server -------------------

def test_python_call_to_a_node_client_on_a_node_server(
        py, js, py_client, js_client):
    """``sio.call`` and ``emit(callback=)`` to a socket on a Node server
    return its answer; other sockets get nothing.
    In each namespace, on the same servers."""
    for namespace in NAMESPACES:
        target = js_client(js.url, namespace)
        other = js_client(js.url, namespace)
        target.command('answer', event='ask', value={'ok': 'js'})
        assert py.sio.call('ask', 7, to=target.sid, namespace=namespace,
                           timeout=5) == {'ok': 'js'}
        answers: list = []
        done = threading.Event()

        def callback(*args):
            answers.append(args)
            done.set()

        py.sio.emit('ask', 8, to=target.sid, namespace=namespace,
                    callback=callback)
        assert done.wait(5)
        assert answers == [({'ok': 'js'},)]
        mark(py, [target, other], namespace)
        assert got(target, 'ask', namespace) == [[7], [8]]
        assert got(other, 'ask', namespace) == []


def test_python_call_with_binary_to_a_python_client_on_a_node_server(
        py, js, py_client):
    """``sio.call`` with bytes, to a Python client of a Node server, sends
    and gets back bytes."""
    client = py_client(js.url, answers={'blob': lambda x: {'raw': x + b'!'}})
    assert py.sio.call('blob', b'\x00\x01', to=client.sid(), timeout=5) == \
        {'raw': b'\x00\x01!'}


# --- Node emitWithAck to clients of Python servers ---------------------------

@pytest.mark.every_deployment
def test_node_emit_with_ack_collects_answers_from_python_servers(
        make_node, js, py_client, js_client):
    """``io.timeout(ms).emitWithAck`` from Node reaches the clients of every
    Python server and gets every answer, before the timeout, even with a
    Python server that has no client.
    In each namespace, on the same servers."""
    a, b, empty = make_node(), make_node(), make_node()
    for namespace in NAMESPACES:
        nss = [namespace]
        py_client(a.url, nss, answers={'ask': lambda x: f'a1-{x}'})
        py_client(a.url, nss, answers={'ask': lambda x: f'a2-{x}'})
        py_client(b.url, nss, answers={'ask': lambda x: f'b1-{x}'})
        for url, value in ((b.url, 'b-js'), (js.url, 'js')):
            client = js_client(url, namespace)
            client.command('answer', event='ask', value=value)
        # initialize the empty server, so Node counts it (PUBSUB NUMSUB)
        py_client(empty.url, nss).disconnect()
        assert js.command('serverCount', namespace=namespace) == 4
        result = js.command('emitWithAck', event='ask', args=[5],
                            namespace=namespace, timeout=ACK_TIMEOUT_MS)
        assert sorted(result) == ['a1-5', 'a2-5', 'b-js', 'b1-5', 'js']


def test_node_emit_with_ack_to_a_room_gets_only_members_answers(
        py, js, py_client, js_client):
    """``io.to(room).except(x).timeout(ms).emitWithAck`` asks only the
    matching clients of a Python server; the others get nothing."""
    member = py_client(py.url, answers={'ask': lambda x: 'member'})
    excluded = py_client(py.url, answers={'ask': lambda x: 'excluded'})
    outsider = js_client(py.url)
    outsider.command('answer', event='ask', value='outsider')
    join(member, 'vip')
    join(excluded, 'vip')
    result = js.command('emitWithAck', event='ask', args=[1], to='vip',
                        timeout=ACK_TIMEOUT_MS,
                        **{'except': [excluded.sid()]})
    assert result == ['member']
    mark(js, [member, excluded, outsider])
    assert got(excluded, 'ask') == got(outsider, 'ask') == []


def test_node_emit_with_ack_and_no_matching_python_client(py, js, py_client):
    """A Python server with no matching client answers a count of 0, so
    Node's emitWithAck resolves with no answers instead of timing out."""
    py_client(py.url)
    assert js.command('emitWithAck', event='ask', to='nobody',
                      timeout=ACK_TIMEOUT_MS) == []


def test_node_emit_with_ack_carries_binary_both_ways(py, js, py_client):
    """Bytes in an ack'd Node broadcast reach a Python server's client as
    bytes, and bytes in its answer come back as bytes."""
    py_client(py.url, answers={'blob': lambda x: {'raw': x + b'!'}})
    result = js.command('emitWithAck', event='blob', args=[b'\x00\xff'],
                        timeout=ACK_TIMEOUT_MS)
    assert result == [{'raw': b'\x00\xff!'}]
