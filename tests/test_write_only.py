"""A write_only manager is an emitter for processes that are not servers."""
import subprocess
import sys
import textwrap

import pytest

from socketio_streams import RedisStreamsManager

from .nodes import wait_until


def test_emitter_reaches_room_members_on_the_servers(cluster, clients,
                                                     redis_server):
    for node in cluster:
        clients.append(node.client())
    clients[2].sio.call('join', 'workers')
    mgr = RedisStreamsManager(redis_server.url, write_only=True)
    mgr.emit('job', {'id': 1}, to='workers')
    mgr.emit('all', 'x')
    mgr.emit('chat', b'\x01', namespace='/chat')
    mgr.close()
    # (not settle(): a server's own marker reaches its clients at once,
    # maybe before its reader has read what the emitter wrote before it)
    for client in clients:
        client.wait_for('all')  # after 'job', in the same stream
    assert [c.events('job') for c in clients] == [[], [], [({'id': 1},)]]
    assert [c.events('all') for c in clients] == [[('x',)]] * 3
    assert mgr._links.readers == {} and mgr._links.subscriber is None


def test_emitter_room_operations(cluster, clients, redis_server):
    client = cluster[1].client()
    clients.append(client)
    mgr = RedisStreamsManager(redis_server.url, write_only=True)
    mgr.enter_room(client.sid(), '/', 'late')
    mgr.emit('late', 1, to='late')
    mgr.close()
    client.wait_for('late')


def test_a_script_that_exits_without_close_still_delivers(cluster, clients,
                                                          redis_server):
    """Queued packets are flushed at interpreter exit, not lost."""
    client = cluster[0].client()
    clients.append(client)
    script = textwrap.dedent(f'''
        from socketio_streams import RedisStreamsManager
        mgr = RedisStreamsManager({redis_server.url!r}, write_only=True)
        for i in range(500):
            mgr.emit('n', i)
    ''')
    subprocess.run([sys.executable, '-c', script], check=True, timeout=30)
    client.wait_for('n', count=500)
    assert client.events('n') == [(i,) for i in range(500)]


def test_emitter_refuses_what_it_cannot_send(redis_server):
    """Callbacks need a server; a bad event or namespace is a clear error
    at the call, not a packet no server can route."""
    mgr = RedisStreamsManager(redis_server.url, write_only=True)
    try:
        with pytest.raises(RuntimeError, match='context of a server'):
            mgr.emit('x', 1, to='sid', callback=lambda *a: None)
        with pytest.raises(TypeError, match='event must be a str'):
            mgr.emit(5, 1)
        for namespace in (5, 'chat'):
            with pytest.raises(ValueError, match='namespace must be'):
                mgr.emit('x', 1, namespace=namespace)
        with pytest.raises(TypeError, match='not JSON serializable'):
            mgr.emit('x', {1, 2})
        itself: list = ['a']
        itself.append(itself)
        deep: list = []
        for _ in range(100_000):
            deep = [deep]
        plain = RedisStreamsManager(redis_server.url, write_only=True,
                                    only_plaintext=True)
        for data in (itself, {'d': itself}, deep):
            for emitter in (mgr, plain):
                with pytest.raises(TypeError, match='contains itself'):
                    emitter.emit('x', data)
        plain.close()
        wait_until(lambda: mgr.stats()['buffered'] == 0, 2,
                   'the last reply read (written ahead)')
    finally:
        mgr.close()
