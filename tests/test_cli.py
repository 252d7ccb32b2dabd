"""The operator CLI against a live cluster, and without one.

Most commands run ``cli.main`` in this process (``run``): a ``python -m
socketio_streams`` costs a second of CPU importing python-socketio. The
entry point itself runs as a subprocess in ``test_bad_url_is_one_clear_line``
and in the ``tail`` that follows new entries.
"""
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from socketio_streams import positions
from socketio_streams.cli import main

from .deployments import DEPLOYMENT
from .nodes import settle, wait_until


def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """``socketio-streams *args`` in this process: its exit code, stdout
    and stderr, as ``subprocess.run`` gives them."""
    out, err = io.StringIO(), io.StringIO()
    code: list = []

    def cli() -> None:
        try:
            code.append(main(list(args)))
        except SystemExit as exc:  # argparse's errors
            code.append(exc.code)

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        thread = threading.Thread(target=cli, daemon=True)
        thread.start()
        thread.join(timeout)
    if not code:
        raise TimeoutError(f'socketio-streams {" ".join(args)}: still '
                           f'running after {timeout} s')
    return subprocess.CompletedProcess(args, code[0], out.getvalue(),
                                       err.getvalue())


def run_entry_point(*args: str) -> subprocess.CompletedProcess:
    """``python -m socketio_streams *args``, a process of its own."""
    return subprocess.run([sys.executable, '-m', 'socketio_streams', *args],
                          capture_output=True, text=True, timeout=20)


def test_streams_servers_and_tail(redis_server, cluster, clients):
    for node in cluster:
        clients.append(node.client())
    cluster[0].sio.emit('hello', {'raw': b'\x01'}, to='room1')
    cluster[1].mgr.sockets_join('vip', to=clients[0].sid())
    settle(cluster[0], clients)
    url = ['--url', redis_server.url]

    streams = run(*url, 'streams')
    assert streams.returncode == 0, streams.stderr
    assert streams.stdout.startswith('socket.io: ')
    assert 'entries' in streams.stdout and 'KiB' in streams.stdout

    servers = run(*url, 'servers')
    assert servers.returncode == 0, servers.stderr
    assert '/: 3 server(s)' in servers.stdout
    assert cluster[2].mgr.uid in servers.stdout

    tail = run(*url, 'tail', '--from-start', '--count', '3')
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 3
    assert any('BROADCAST' in line and '"hello"' in line for line in lines)
    assert any('SOCKETS_JOIN' in line and "-> ['vip']" in line
               for line in lines)

    tail_json = run(*url, 'tail', '--from-start', '--count', '3', '--json')
    records = [json.loads(line) for line in tail_json.stdout.splitlines()]
    hello = next(r for r in records if r['type'] == 3 and
                 r['data']['packet']['data'][0] == 'hello')
    assert hello['nsp'] == '/' and hello['data']['packet']['data'][1] == {
        'raw': {'$base64': 'AQ=='}}
    assert 4 in [r['type'] for r in records]


def test_unreachable_redis_is_one_clear_line(redis_server):
    url = f'redis://127.0.0.1:{redis_server.port}/0'
    redis_server.stop()
    result = run('--url', url, 'streams')
    assert result.returncode != 0
    assert result.stderr.count('\n') == 1
    assert 'cannot reach Redis at redis://127.0.0.1:' in result.stderr
    assert 'Traceback' not in result.stderr


def test_bad_url_is_one_clear_line():
    result = run_entry_point('--url', 'http://nope', 'servers')
    assert result.returncode == 2
    assert 'unsupported Redis URL scheme' in result.stderr
    assert 'Traceback' not in result.stderr


def test_tail_says_what_it_waits_for_and_prints_the_last_entries(
        redis_server, cluster, clients):
    clients.append(cluster[1].client())
    for n in range(3):
        cluster[0].sio.emit('n', n)
    settle(cluster[0], clients)
    url = ['--url', redis_server.url]

    last = run(*url, 'tail', '--last', '2', '--count', '2')
    assert last.returncode == 0, last.stderr
    assert last.stderr == ("tail: the last 2 entries, then waiting for new "
                           "entries on 'socket.io' (stopping after 2; "
                           "Ctrl-C to stop)\n")
    # the newest two: the third emit and the settle marker
    lines = last.stdout.splitlines()
    assert len(lines) == 2
    assert '["n", 2]' in lines[0] and '"settle"' in lines[1]

    # a new entry after the last ones: --count includes those of --last
    follow = subprocess.Popen(
        [sys.executable, '-m', 'socketio_streams', *url, 'tail', '--last',
         '1', '--count', '2'], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert 'waiting for new entries' in follow.stderr.readline()
        first = follow.stdout.readline()
        assert '"settle"' in first
        cluster[2].sio.emit('later', 1)
        out, _ = follow.communicate(timeout=20)
        assert '["later", 1]' in out and follow.returncode == 0
    finally:
        follow.kill()


def test_sockets_lists_every_socket_by_server_and_room(
        redis_server, make_node, cluster, clients):
    for node in cluster:
        clients.append(node.client(['/', '/chat']))
    clients[0].sio.call('join', 'blue')
    clients[2].sio.call('join', 'blue')
    idle = make_node()  # a live server with no socket (left)
    idle.client().disconnect()
    wait_until(lambda: len(cluster[0].mgr.fetch_sockets()) == 3, 10,
               'the idle server\'s socket gone')
    uids = [node.mgr.uid for node in cluster]
    sids = [client.sid() for client in clients]
    url = ['--url', redis_server.url]

    result = run(*url, 'sockets', '--json')
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found['server_count'] == 4 and found['socket_count'] == 3
    assert found['namespace'] == '/' and found['error'] is None
    assert list(found['servers']) == sorted([*uids, idle.mgr.uid])
    assert found['servers'][idle.mgr.uid] == {'sockets': [], 'rooms': {}}
    for node, uid, sid in zip(cluster, uids, sids):
        (socket,) = found['servers'][uid]['sockets']
        assert socket['sid'] == sid and socket['namespace'] == '/'
        assert socket['via'] == f'127.0.0.1:{node.http.port}'
    assert found['servers'][uids[0]]['rooms'] == {'blue': [sids[0]]}
    assert found['servers'][uids[1]]['rooms'] == {}
    assert found['servers'][uids[0]]['sockets'][0]['rooms'] == ['blue']
    assert found['rooms'] == {'blue': sorted([sids[0], sids[2]])}

    text = run(*url, 'sockets')
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith('/: 3 socket(s) on 4 server(s)\n')
    assert (f'server {uids[0]}: 1 socket(s)\n'
            f'  {sids[0]}  via 127.0.0.1:{cluster[0].http.port}  from '
            f'127.0.0.1  rooms: blue\n'
            f'  room blue: 1 socket(s): {sids[0]}\n') in text.stdout
    assert f'server {uids[1]}: 1 socket(s)\n  {sids[1]}  ' in text.stdout
    assert f'server {idle.mgr.uid}: 0 socket(s)\n' in text.stdout
    assert text.stdout.endswith(
        f'rooms of the cluster:\n  room blue: 2 socket(s): '
        f'{", ".join(sorted([sids[0], sids[2]]))}\n')

    chat = json.loads(run(*url, 'sockets', '--namespace', '/chat',
                          '--json').stdout)
    assert {uid: [s['sid'] for s in server['sockets']]
            for uid, server in chat['servers'].items()} == {
        idle.mgr.uid: [], **{uid: [client.sid('/chat')]
                             for uid, client in zip(uids, clients)}}


@pytest.mark.skipif(shutil.which('node') is None,
                    reason='needs node (20+) and npm on PATH')
def test_sockets_of_a_node_server_under_its_uid(redis_server, py, js,
                                                js_client, clients):
    """A Node server's sockets are grouped under the uid its
    FETCH_SOCKETS_RESPONSE carries: its ``/`` adapter's private channel."""
    clients.append(py.client())
    on_js = [js_client(js.url), js_client(js.url, auth={'rooms': ['red']})]
    prefix = 'socket.io#/#'
    node_uids = {c.decode()[len(prefix):-1] for c in
                 redis_server.client().pubsub_channels(f'{prefix}?*#')} - {
        py.mgr.uid}
    assert len(node_uids) == 1
    (node_uid,) = node_uids

    result = run('--url', redis_server.url, 'sockets', '--json')
    assert result.returncode == 0, result.stderr
    servers = json.loads(result.stdout)['servers']
    assert set(servers) == {py.mgr.uid, node_uid}
    assert [s['sid'] for s in servers[py.mgr.uid]['sockets']] == [
        clients[0].sid()]
    assert [s['sid'] for s in servers[node_uid]['sockets']] == sorted(
        c.sid for c in on_js)
    assert servers[node_uid]['rooms'] == {'red': [on_js[1].sid]}


def test_emit_reaches_the_clients_of_a_room(redis_server, cluster, clients):
    for node in cluster:
        clients.append(node.client(['/', '/chat']))
    clients[1].sio.call('join', 'blue')
    url = ['--url', redis_server.url]

    sent = run(*url, 'emit', 'news', '{"a": [1, 2]}', '--to', 'blue',
               '--json')
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {
        'event': 'news', 'data': {'a': [1, 2]}, 'to': ['blue'],
        'namespace': '/', 'sent': True}
    assert clients[1].wait_for('news') == [({'a': [1, 2]},)]

    everyone = run(*url, 'emit', 'hi', '"all"', '--namespace', '/chat')
    assert everyone.stdout == "sent 'hi' to everyone in /chat\n"
    for client in clients:
        assert client.wait_for('hi', namespace='/chat') == [('all',)]
    settle(cluster[0], clients)
    assert clients[0].events('news') == clients[2].events('news') == []


def test_emit_and_sockets_without_redis_are_one_clear_line(redis_server):
    url = f'redis://127.0.0.1:{redis_server.port}/0'
    redis_server.stop()
    for args in (['emit', 'news', '1'], ['sockets']):
        result = run('--url', url, *args)
        assert result.returncode == 2
        assert result.stderr.count('\n') == 1, result.stderr
        assert 'cannot reach Redis at redis://127.0.0.1:' in result.stderr


def test_emit_with_bad_json_is_one_clear_line():
    result = run('--url', 'redis://127.0.0.1:1/0', 'emit', 'x', 'nope')
    assert result.returncode == 2
    assert "argument JSON: 'nope' is not JSON" in result.stderr
    assert 'Traceback' not in result.stderr


def test_streams_tells_each_readers_position_and_what_is_not_one(
        redis_server):
    """Positions as readers write them (``positions.value``), one behind,
    one stale; and a field that is not one."""
    client = redis_server.client()
    ids = [client.xadd('socket.io', {'n': str(i)}) for i in range(3)]
    now = time.time()
    client.hset('socket.io:readers', mapping={
        'behind': positions.value(ids[0].decode(), now),
        'stale': positions.value(ids[2].decode(), now - 10),
        'junk': 'not a position'})
    out = run('--url', redis_server.url, 'streams').stdout.splitlines()
    ages = [float(a) for a in re.findall(r'reported (\d+\.\d) s ago',
                                         '\n'.join(out))]
    assert 0 <= ages[0] < 3 and 10 <= ages[1] < 13  # (a slow machine)
    assert [re.sub(r'\d+\.\d s ago', 'N s ago', line)
            for line in out[1:]] == [
        f'  reader behind: at {ids[0].decode()}, 2 entries behind, '
        'reported N s ago',
        "  'junk': not a reader's position (publishers delete it)",
        f'  reader stale: at {ids[2].decode()}, 0 entries behind, '
        'reported N s ago: stale, not waited for']
    client.delete('socket.io:readers')
    out = run('--url', redis_server.url, 'streams').stdout.splitlines()
    assert out[1:] == [
        "  no reader has reported its position (Node's do not)"]
    client.set('socket.io:readers', 'a string')
    out = run('--url', redis_server.url, 'streams')
    assert out.returncode == 0 and out.stdout.splitlines()[1].startswith(
        "  socket.io:readers: not read (WRONGTYPE")


def test_streams_tells_where_each_server_has_read(redis_server, make_node):
    """Entries read in a row, then none: each reader reports where it
    stopped once its next read comes back empty (not the first of them
    only, which it reports at once)."""
    nodes = [make_node(block_time_ms=200) for _ in range(2)]
    clients = [node.client() for node in nodes]
    for i in range(5):
        nodes[0].sio.emit('n', i)
    for client in clients:
        client.wait_for('n', 5)
    last = redis_server.client().xrevrange('socket.io', count=1)[0][0]
    url = ['--url', redis_server.url]
    wait_until(lambda: all(
        f'reader {node.mgr.uid}: at {last.decode()}, 0 entries behind'
        in run(*url, 'streams').stdout for node in nodes))
    if DEPLOYMENT != 'cluster':  # a cluster client reads by XREAD
        wait_until(lambda: all(
            f'group of {node.mgr.uid}: at {last.decode()}, 0 entries not '
            'read' in run(*url, 'streams').stdout for node in nodes))
    admin = redis_server.client()
    admin.xgroup_create('socket.io', 'socketio-streams:gone', id='1-0')
    admin.xgroup_create('socket.io', 'theirs', id='0')
    out = run(*url, 'streams').stdout
    assert 'group of gone: at 1-0, ' in out and ': a server gone' in out
    assert out.count(': a server gone') == 1
    assert '1 other consumer group(s)' in out
