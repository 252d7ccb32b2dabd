"""hiredis is a default dependency; redis-py's pure-Python reply parser
(a user without hiredis) must work as well: a process that cannot import
hiredis runs a small cluster on it."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from .deployments import DEPLOYMENT

SCRIPT = textwrap.dedent('''
    import sys
    sys.modules['hiredis'] = None  # as if it were not installed
    import redis.utils
    assert not redis.utils.HIREDIS_AVAILABLE
    import threading, time
    import socketio
    from socketio_streams import RedisStreamsManager

    url = sys.argv[1]
    got, done = [], threading.Event()
    receiver = RedisStreamsManager(url)
    sio = socketio.Server(client_manager=receiver, async_mode='threading')

    def capture(eio_sid, pkt):
        got.append(pkt.data)
        if len(got) == 200:  # 100 packets, each with its attachment
            done.set()

    sio._send_eio_packet = capture
    receiver.enter_room(receiver.connect('eio1', '/'), '/', 'here')
    emitter = RedisStreamsManager(url, write_only=True)
    for i in range(100):
        emitter.emit('n', {'i': i, 'bin': bytes([i])}, to='here')
    assert emitter.flush(30) and done.wait(30), len(got)
    assert emitter.server_count() == 1  # PUB/SUB replies parsed too
    emitter.close()
    receiver.close()
    print('ok', len(got))
''')


def test_the_pure_python_parser_path_works(redis_server):
    if DEPLOYMENT != 'standalone':
        pytest.skip('one plain server is enough for the parser')
    result = subprocess.run([sys.executable, '-c', SCRIPT, redis_server.url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ['ok', '200']
