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
