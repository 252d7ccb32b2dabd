"""The Socket.IO Admin UI (``sio.instrument()``) across the cluster: an
admin on one server sees every server and every socket, and its actions
reach sockets on any server. The admin here is a python-socketio client
on ``/admin``, sending what the UI sends (the UI itself:
``test_admin_ui.py``)."""
import inspect
import json
import os

import engineio.async_socket
import engineio.socket
import pytest
import socketio

from socketio_streams import RedisStreamsManager

from .asyncmode import ASYNC_MODE
from .nodes import MANAGER, Node, wait_until

AUTH = {'username': 'admin', 'password': 'secret'}


def instrument(server, **options):
    """``server.instrument(**options)``, leaving engine.io's socket
    class as it was: python-socketio patches it (to count packets), and a
    second patch in one process makes each patched method call itself
    (RecursionError: what was saved is overwritten), as the servers of a
    test, unlike those of a cluster, share one process. Stats every 0.2 s
    (2 s by default): stopping them waits for the stats task's sleep."""
    options.setdefault('server_stats_interval', 0.2)
    classes = [engineio.socket.Socket, engineio.async_socket.AsyncSocket]
    saved = [dict(vars(cls)) for cls in classes]
    try:
        return server.instrument(**options)
    finally:
        for cls, before in zip(classes, saved):
            for name in set(vars(cls)) - set(before):
                delattr(cls, name)
            for name, value in before.items():
                if vars(cls).get(name) is not value:
                    setattr(cls, name, value)


@pytest.fixture
def cluster(redis_server, nodes):
    """Two instrumented servers."""
    pair = [Node(redis_server.url), Node(redis_server.url)]
    nodes.extend(pair)
    admins = [instrument(node.sio, auth=AUTH) for node in pair]
    yield pair
    for node, admin in zip(pair, admins):
        stop_stats(node, admin)


def stop_stats(node, instrumented):
    """Stop the stats task of what ``instrument()`` returned."""
    stopped = instrumented.shutdown()
    if inspect.isawaitable(stopped):
        node.loop.run(stopped)


def on_admin(admin, event):
    """The args of each ``event`` the admin got."""
    return admin.events(event, '/admin')


@pytest.fixture
def watched(cluster, clients):
    """The two servers, a client on each (on B in two namespaces) and an
    admin on A."""
    a, b = cluster
    on_a = a.client(['/'])
    on_b = b.client(['/', '/chat'])
    clients += [on_a, on_b]
    admin = a.client(['/admin'], auth=AUTH)
    clients.append(admin)
    return a, b, on_a, on_b, admin


def test_one_admin_sees_every_server_and_socket(watched):
    a, b, on_a, on_b, admin = watched

    [(listed,)] = admin.wait_for('all_sockets', namespace='/admin')
    by_id = {(s['nsp'], s['id']): s for s in listed}
    assert set(by_id) == {('/', on_a.sid()), ('/', on_b.sid()),
                          ('/chat', on_b.sid('/chat')),
                          ('/admin', admin.sid('/admin'))}
    # a local socket as python-socketio serializes it
    local = by_id[('/', on_a.sid())]
    assert local['clientId'] == on_a.sio.eio.sid
    assert local['transport'] == 'websocket'
    # one of the other server's, from fetch_sockets
    remote = by_id[('/chat', on_b.sid('/chat'))]
    assert remote['rooms'] == [on_b.sid('/chat')]
    assert remote['transport'] == 'websocket'
    assert remote['handshake']['query']['transport'] == 'websocket'
    assert 'auth' not in remote['handshake']
    [(config,)] = on_admin(admin, 'config')
    assert {'MJOIN', 'MLEAVE', 'MDISCONNECT', 'ALL_EVENTS'} <= set(
        config['supportedFeatures'])

    # both servers report, each under its own name
    names = {a.mgr.host_id, b.mgr.host_id}
    assert len(names) == 2
    wait_until(lambda: {s['serverId'] for (s,) in
                        on_admin(admin, 'server_stats')} == names,
               10, 'server_stats of both servers')

    def latest_of_b():
        return [s for (s,) in on_admin(admin, 'server_stats')
                if s['serverId'] == b.mgr.host_id][-1]

    # B reports every 0.2 s; A delivers a report when it reads it, so the
    # first one the admin gets may have been made before B's client
    # connected to /chat
    wait_until(lambda: {'name': '/chat', 'socketsCount': 1} in
               latest_of_b()['namespaces'], 10, 'B counting its /chat socket')


def test_the_admins_actions_reach_a_socket_of_another_server(watched):
    a, b, on_a, on_b, admin = watched
    admin.wait_for('all_sockets', namespace='/admin')
    sid = on_b.sid()

    def members(room):
        return {s.sid for s in a.mgr.fetch_sockets(to=room)}

    admin.sio.emit('join', ('/', 'vip', sid), namespace='/admin')
    wait_until(lambda: members('vip') == {sid}, 10, 'B\'s socket in vip')
    # reported by B, to the admin on A
    wait_until(lambda: any(args[:3] == ('/', 'vip', sid) for args in
                           on_admin(admin, 'room_joined')),
               10, 'room_joined from B')

    admin.sio.emit('emit', ('/', 'vip', 'hello', 'world'),
                   namespace='/admin')
    assert on_b.wait_for('hello', timeout=10) == [('world',)]

    admin.sio.emit('leave', ('/', 'vip', sid), namespace='/admin')
    wait_until(lambda: not members('vip'), 10, 'vip empty')

    admin.sio.emit('_disconnect', ('/', False, sid), namespace='/admin')
    wait_until(lambda: '/' not in on_b.sio.namespaces, 10,
               'B\'s socket disconnected from /')
    wait_until(lambda: any(args[:2] == ('/', sid) for args in
                           on_admin(admin, 'socket_disconnected')),
               10, 'socket_disconnected from B')
    # the room filter held: only that socket, only that namespace
    assert on_b.sio.connected and '/chat' in on_b.sio.namespaces
    assert {s.sid for s in a.mgr.fetch_sockets()} == {on_a.sid()}
    # close: the whole connection (python-socketio would keep it)
    admin.sio.emit('_disconnect', ('/chat', True, on_b.sid('/chat')),
                   namespace='/admin')
    wait_until(lambda: not on_b.sio.connected, 10, 'B\'s client closed')
    assert on_a.sio.connected


def test_an_admin_with_wrong_credentials_is_refused(cluster, clients):
    with pytest.raises(socketio.exceptions.ConnectionError):
        cluster[0].client(['/admin'], auth={'username': 'admin',
                                            'password': 'guess'})


async def _async_check(auth):
    return auth == AUTH


@pytest.mark.parametrize('auth', [
    [{'username': 'other', 'password': 'x'}, AUTH], AUTH.__eq__,
    _async_check], ids=['list', 'function', 'coroutine function'])
def test_the_admins_credentials_checked_as_python_socketio_does(
        redis_server, nodes, clients, auth):
    if auth is _async_check and MANAGER != 'asyncio':
        pytest.skip('a coroutine function needs an AsyncServer')
    node = Node(redis_server.url)
    nodes.append(node)
    made = instrument(node.sio, auth=auth)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            node.client(['/admin'], auth={'username': 'admin'})
        admin = node.client(['/admin'], auth=AUTH)
        clients.append(admin)
        admin.wait_for('all_sockets', namespace='/admin')
    finally:
        stop_stats(node, made)


@pytest.mark.skipif(ASYNC_MODE != 'threading',
                    reason='forks a threaded test process (threading only)')
def test_a_forked_worker_reports_under_a_name_of_its_own(redis_server):
    """gunicorn ``--preload``: ``instrument()`` in the parent, then each
    worker a server of its own in the UI too."""
    mgr = RedisStreamsManager(redis_server.url)
    sio = socketio.Server(client_manager=mgr, async_mode=ASYNC_MODE)
    made = instrument(sio, auth=False)
    named = instrument(socketio.Server(
        client_manager=RedisStreamsManager(redis_server.url),
        async_mode=ASYNC_MODE), auth=False, server_id='mine')
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, json.dumps([made.server_id, mgr.host_id,
                                        named.server_id]).encode())
        finally:
            os._exit(0)
    try:
        child = json.loads(os.read(read, 4096))
    finally:
        os.waitpid(pid, 0)
        os.close(read)
        os.close(write)
        mgr.close()
        named.sio.manager.close()
    assert made.server_id == mgr.host_id
    assert child[0] == child[1] != mgr.host_id
    assert child[1].split('#')[1] == str(pid)
    assert child[2] == 'mine'
