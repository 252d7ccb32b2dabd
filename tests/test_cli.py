"""The operator CLI against a live cluster, and without one."""
import json
import subprocess
import sys

from .nodes import settle


def run(*args, timeout=20):
    return subprocess.run([sys.executable, '-m', 'socketio_streams', *args],
                          capture_output=True, text=True, timeout=timeout)


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
    result = run('--url', 'http://nope', 'servers')
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


def test_sockets_lists_every_socket_of_the_cluster(redis_server, cluster,
                                                   clients):
    for node in cluster:
        clients.append(node.client(['/', '/chat']))
    clients[0].sio.call('join', 'blue')
    clients[2].sio.call('join', 'blue')
    url = ['--url', redis_server.url]

    result = run(*url, 'sockets', '--json')
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found['servers'] == 3 and found['namespace'] == '/'
    by_sid = {s['sid']: s for s in found['sockets']}
    assert set(by_sid) == {c.sid() for c in clients}
    assert by_sid[clients[0].sid()]['rooms'] == ['blue']
    assert by_sid[clients[1].sid()]['rooms'] == []
    assert by_sid[clients[2].sid()]['via'] == \
        f'127.0.0.1:{cluster[2].http.port}'

    text = run(*url, 'sockets')
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith('/: 3 socket(s) on 3 server(s)\n')
    blue = sorted([clients[0].sid(), clients[2].sid()])
    assert f'  room blue: 2 socket(s): {", ".join(blue)}\n' in text.stdout

    chat = json.loads(run(*url, 'sockets', '--namespace', '/chat',
                          '--json').stdout)
    assert {s['sid'] for s in chat['sockets']} == {
        c.sid('/chat') for c in clients}
    assert all(s['namespace'] == '/chat' for s in chat['sockets'])


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
