"""The asyncio manager served as users serve it: ``tests/apps/async_app.py``
(a module-level ``AsyncRedisStreamsManager``) under ``uvicorn --workers
2``, ``gunicorn -k uvicorn_worker.UvicornWorker -w 2``, ``hypercorn -w 2``
and ``python -m aiohttp.web``, as subprocesses on free ports, with real
clients; connection state recovery with the official JavaScript client
across async and sync servers; one cluster with a Node.js server.

Only processes started here are stopped, through their own ``Popen``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from socketio_streams import RedisStreamsManager

from .async_nodes import AsyncNode
from .interop import wait_got
from .nodejs import NodeClient, NodeUnavailable, npm_ready
from .nodes import NAMESPACES, Client, SyncNode, wait_until
from .servers import RedisProcess, free_port, stop_process, wait_serving
from .test_deployment import _no_control_socket

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / 'tests' / 'apps'
START_TIMEOUT = 30.0
#: what a clean exit leaves out of a server's output (warnings are on)
UNCLEAN = ('Task was destroyed', 'Unclosed', 'unclosed Connection',
           'unclosed transport', 'Traceback')


def _command(kind: str, port: int) -> list[str]:
    bind = f'127.0.0.1:{port}'
    if kind == 'uvicorn':
        return ['-m', 'uvicorn', '--workers', '2', '--host', '127.0.0.1',
                '--port', str(port), 'async_app:app']
    if kind == 'gunicorn':
        return ['-m', 'gunicorn', '-k', 'uvicorn_worker.UvicornWorker',
                '-w', '2', '-b', bind, '--graceful-timeout', '5',
                *_no_control_socket(), 'async_app:app']
    if kind == 'hypercorn':
        return ['-m', 'hypercorn', '-w', '2', '-b', bind, 'async_app:app']
    assert kind == 'aiohttp'
    return ['-m', 'aiohttp.web', '-H', '127.0.0.1', '-P', str(port),
            'async_app:aiohttp_app']


class Served:
    """``tests/apps/async_app.py`` served by ``kind`` on a free port, in a
    subprocess of ours, with Python warnings on."""

    def __init__(self, kind: str, redis_url: str, log: Path,
                 recovery: float | None = None):
        pytest.importorskip(kind)
        if kind == 'gunicorn':
            pytest.importorskip('uvicorn_worker')
        self.kind = kind
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = log
        env = dict(os.environ, REDIS_URL=redis_url, PYTHONPATH=str(ROOT),
                   PYTHONWARNINGS='default',
                   SIO_APP_MODE='aiohttp' if kind == 'aiohttp' else 'asgi')
        if recovery:
            env['SIO_APP_RECOVERY'] = str(recovery)
        with open(log, 'wb') as out:
            self.proc = subprocess.Popen(
                [sys.executable, *_command(kind, self.port)], env=env,
                cwd=APPS, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_serving(self.proc, self.url, self.output, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        return self.log.read_text(errors='replace')

    def sigterm(self) -> int:
        """SIGTERM; its exit code."""
        self.proc.terminate()
        return self.proc.wait(20)

    def stop(self) -> None:
        stop_process(self.proc, grace=15)


@pytest.fixture
def served(redis_server, tmp_path):
    """``served(kind, **options)`` -> a started ``Served`` on the test's
    Redis; all stopped afterwards."""
    made: list[Served] = []

    def start(kind: str, **options) -> Served:
        server = Served(kind, redis_server.url,
                        tmp_path / f'{kind}-{len(made)}.log', **options)
        made.append(server)
        return server

    yield start
    for server in made:
        server.stop()


def _clients_of_two_processes(urls: list[str], clients: list,
                              within: float = 60.0) -> dict:
    """Connect clients, in turn to each of ``urls``, until two processes
    serve some (at least four clients); ``{pid: [clients]}``. A second
    worker may still be starting (a loaded host): keep trying for
    ``within`` s, at most four clients per process kept."""
    by_pid: dict[int, list[Client]] = {}
    deadline = time.monotonic() + within
    n = 0
    while time.monotonic() < deadline:
        client = Client(urls[n % len(urls)], ['/'])
        n += 1
        group = by_pid.setdefault(client.sio.call('pid', timeout=5), [])
        if len(group) >= 4:
            client.disconnect()
            time.sleep(0.1)
            continue
        group.append(client)
        clients.append(client)
        if len(by_pid) >= 2 and sum(map(len, by_pid.values())) >= 4:
            return by_pid
    raise AssertionError(f'{n} clients in {within} s, all served by '
                         f'{list(by_pid)}')


@pytest.mark.parametrize('kind', ['uvicorn', 'gunicorn', 'hypercorn',
                                  'aiohttp'])
def test_workers_are_one_cluster_and_stop_cleanly(served, clients, kind):
    """Two worker processes (two aiohttp servers): a broadcast from a
    client of one reaches the clients of the other, in order;
    ``fetch_sockets`` in one sees the other's sockets; SIGTERM, with a
    client still connected to each, ends each server with exit code 0,
    the clients disconnected and nothing left open."""
    # aiohttp.web runs one process: two of them
    servers = [served(kind) for _ in range(2 if kind == 'aiohttp' else 1)]
    by_pid = _clients_of_two_processes([s.url for s in servers], clients)
    (pid_a, [a, *_]), (pid_b, [b, *_]) = list(by_pid.items())[:2]
    a.sio.emit('say', 'from a')
    b.wait_for('said', timeout=10)
    b.sio.emit('say', 'from b')
    a.wait_for('said', count=2, timeout=10)
    a.sio.emit('say', 'end')
    for client in clients:
        client.wait_for('said', count=3, timeout=10)
        said = [(m['text'], m['pid']) for (m,) in client.events('said')]
        assert said[0] == ('from a', pid_a) and said[2] == ('end', pid_a)
        assert said[1] == ('from b', pid_b)
    everyone = sorted([c.sid(), pid] for pid, group in by_pid.items()
                      for c in group)
    # (the extra clients' disconnection may still be on its way)
    for client in (a, b):
        wait_until(lambda: client.sio.call('fetch', timeout=10) == everyone,
                   timeout=10, message=f'fetch_sockets == {everyone}')
    # a and b stay connected through SIGTERM: the server closes them
    # (hypercorn cancels the connections it still has at shutdown, and
    # logs its own tracebacks for them: there, they leave first)
    kept = [] if kind == 'hypercorn' else [a, b]
    for client in clients:
        if client not in kept:
            client.disconnect()
    for server in servers:
        assert server.sigterm() == 0, server.output()[-3000:]
        output = server.output()
        assert not [m for m in UNCLEAN if m in output], output[-3000:]
    for client in kept:
        wait_until(lambda: not client.sio.connected, timeout=10,
                   message='the client disconnected by the server')


# --- connection state recovery with the official JavaScript client ----------

@pytest.fixture(scope='module')
def recovery_cluster(tmp_path_factory):
    """One Redis; an async server under uvicorn, one under aiohttp and a
    sync one, with recovery on; a write_only emitter. Shared: the tests
    do not stop them."""
    try:
        npm_ready()
    except NodeUnavailable as exc:  # pragma: no cover - node is in the CI
        pytest.skip(f'Node.js peers unavailable: {exc}')
    pytest.importorskip('aiohttp')
    root = tmp_path_factory.mktemp('recovery')
    store = RedisProcess(str(root / 'redis')).start()
    made: list = []
    try:
        made.append(Served('uvicorn', store.url, root / 'uvicorn.log',
                           recovery=30))
        made.append(Served('aiohttp', store.url, root / 'aiohttp.log',
                           recovery=30))
        made.append(SyncNode(store.url, connection_state_recovery={
            'max_disconnection_duration': 30}))
        emitter = RedisStreamsManager(store.url, write_only=True)
        yield dict(zip(['uvicorn', 'aiohttp', 'sync'], made),
                   emitter=emitter, redis=store.client())
        emitter.close(timeout=5)
    finally:
        for server in made:
            server.stop()
        store.stop()


@pytest.mark.parametrize('first, then', [
    ('uvicorn', 'uvicorn'), ('uvicorn', 'aiohttp'), ('aiohttp', 'uvicorn'),
    ('sync', 'uvicorn')])
def test_a_dropped_js_client_is_recovered_by_an_async_server(
        recovery_cluster, first, then):
    """A client of ``first`` loses its transport; once ``first`` stored
    its session, it comes back to ``then`` with its sid, recovered, and
    gets what it missed, in order."""
    cluster = recovery_cluster
    emitter, store = cluster['emitter'], cluster['redis']
    client = NodeClient(cluster[first].url)
    try:
        client.command('emit', event='join', args=['room1'], ack=True)
        emitter.emit('warmup', 0)
        client.wait_for('warmup')
        sid = client.sid
        sessions = set(store.scan_iter('sio:session:*'))
        client.command('close_transport', hold=True)
        client.wait_for('disconnect')
        wait_until(lambda: set(store.scan_iter('sio:session:*')) -
                   sessions, 10, f'the session stored by {first}')
        emitter.emit('missed', 1)
        emitter.emit('missed', 2, to='room1')
        emitter.emit('not-for-me', 0, to='room2')
        emitter.emit('missed', 3, to=sid)
        assert emitter.flush(5)
        connects = len(client.events('connect'))
        client.command('connect', url=cluster[then].url)
        wait_until(lambda: len(client.events('connect')) > connects, 10,
                   f'back on {then}')
        line = client.events('connect')[-1]
        assert (line['recovered'], line['id']) == (True, sid)
        client.wait_for(lambda ln: ln.get('event') == 'missed' and
                        ln['args'][0] == 3)
        assert [args[0] for args in got_js(client, 'missed')] == [1, 2, 3]
        emitter.emit('live', 4, to='room1')  # its rooms are back
        client.wait_for('live')
        assert got_js(client, 'not-for-me') == []
    finally:
        client.stop()


def got_js(client: NodeClient, event: str) -> list:
    return [line['args'] for line in client.events(
        lambda line: line.get('event') == event)]


# --- one cluster with a Node.js server ---------------------------------------

@pytest.fixture
def mixed(redis_server, make_js_server):
    """An async Python server (uvicorn) and a Node server, on one Redis,
    with a client each."""
    node = AsyncNode(redis_server.url, NAMESPACES)
    try:
        js = make_js_server()
        py_client = node.client()
        js_client = NodeClient(js.url)
        js_client.namespace = '/'  # type: ignore[attr-defined]
        try:
            yield node, js, py_client, js_client
        finally:
            js_client.stop()
            py_client.disconnect()
    finally:
        node.stop()


def test_broadcasts_cross_async_and_node_servers(mixed):
    node, js, py_client, js_client = mixed
    node.sio.emit('from-py', {'n': 1})
    js.command('emit', event='from-js', args=[{'n': 2}, b'\x01'])
    # each client's two events come by separate ways (Redis, or its own
    # server's local delivery): wait for each, not for one as a marker
    assert wait_got(js_client, 'from-py') == [[{'n': 1}]]
    assert wait_got(py_client, 'from-js') == [[{'n': 2}, b'\x01']]
    assert wait_got(py_client, 'from-py') == [[{'n': 1}]]
    assert wait_got(js_client, 'from-js') == [[{'n': 2}, b'\x01']]


def test_fetch_sockets_across_async_and_node_servers(mixed):
    node, js, py_client, js_client = mixed
    both = sorted([py_client.sid(), js_client.sid])
    assert sorted(s.sid for s in node.mgr.fetch_sockets()) == both
    assert sorted(s['id'] for s in js.command('fetchSockets')) == both


def test_server_side_emit_with_ack_across_async_and_node_servers(mixed):
    node, js, _py_client, _js_client = mixed
    js.command('onServerSideEmit', event='ping', reply='pong from js')

    async def answer(x):
        return f'pong from py {x}'
    node.mgr.on('hello', answer)
    answers: list = []
    done = threading.Event()

    def callback(err, responses):
        answers.append((err, responses))
        done.set()
    node.mgr.server_side_emit('ping', 1, callback=callback)
    assert done.wait(10)
    assert answers == [(None, ['pong from js'])]
    assert js.command('serverSideEmit', event='hello', args=[2],
                      ack=True) == ['pong from py 2']


def test_clients_of_a_stopped_server_are_recovered_by_another(
        served, redis_server, emitters):
    """A rolling restart: SIGTERM ends a uvicorn, its JS client goes to
    another one and is recovered with what it missed meanwhile. (Not
    aiohttp.web: with a websocket open, SIGTERM does not end it within
    20 s.)"""
    try:
        npm_ready()
    except NodeUnavailable as exc:  # pragma: no cover - node is in the CI
        pytest.skip(f'Node.js peers unavailable: {exc}')
    first = served('uvicorn', recovery=30)
    other = served('uvicorn', recovery=30)
    emitters.append(RedisStreamsManager(redis_server.url, write_only=True))
    emitter = emitters[0]
    client = NodeClient(first.url, reconnection_delay=100,
                        reconnection_delay_max=200)
    try:
        emitter.emit('warmup', 0)
        client.wait_for('warmup')
        sid = client.sid
        assert first.sigterm() == 0
        client.wait_for('disconnect')
        emitter.emit('missed', 1)
        emitter.emit('missed', 2, to=sid)
        assert emitter.flush(5)
        connects = len(client.events('connect'))
        client.command('connect', url=other.url)
        wait_until(lambda: len(client.events('connect')) > connects, 10,
                   'back on the other server')
        line = client.events('connect')[-1]
        assert (line['recovered'], line['id']) == (True, sid)
        client.wait_for(lambda ln: ln.get('event') == 'missed' and
                        ln['args'][0] == 2)
        assert [args[0] for args in got_js(client, 'missed')] == [1, 2]
    finally:
        client.stop()
