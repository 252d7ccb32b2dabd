"""Life cycle: ``sio.shutdown()`` closes the manager, a closed manager is
local, waits on the caller's path are bounded, exit waits once."""
import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import traceback

import pytest
import socketio

from socketio_streams import RedisStreamsManager, links
from socketio_streams import manager as manager_module
from socketio_streams.backoff import Backoff

from .asyncmode import ASYNC_MODE
from .nodes import MANAGER, Node, hold_reader, wait_until
from .servers import RedisProcess, free_port


def _tasks(mgr) -> list:
    shell = mgr._links
    return [shell.publisher, shell.subscriber, *shell.readers.values()]


def _task_runners(node) -> list:
    """Live threads (threading) or asyncio tasks (the asyncio manager)
    running one of the manager's tasks."""
    tasks = {id(t) for t in _tasks(node.mgr)}
    if MANAGER == 'asyncio':
        async def running() -> list:
            return [t for t in asyncio.all_tasks()
                    if id(_task_owner(t)) in tasks]
        return node.loop.run(running())
    return [t for t in threading.enumerate() if id(_owner(t)) in tasks]


def _owner(thread: threading.Thread):
    """The object whose method the thread runs: its target's, or that of
    the steps it drives (``steps.run(task._run())``)."""
    owner = getattr(getattr(thread, '_target', None), '__self__', None)
    args = getattr(thread, '_args', ())
    return owner if owner is not None else _steps_owner(*args[:1])


def _task_owner(task: asyncio.Task):
    """The object whose steps an asyncio task drives
    (``steps.arun(task._run())``)."""
    frame = task.get_coro().cr_frame
    return _steps_owner(frame.f_locals.get('steps')) if frame else None


def _steps_owner(steps=None):
    frame = getattr(steps, 'gi_frame', None)
    return frame.f_locals.get('self') if frame is not None else None


def test_server_shutdown_flushes_and_ends_the_managers_tasks(
        redis_server, nodes, clients, caplog):
    """``sio.shutdown()`` writes what was queued, ends the publisher,
    reader and subscriber tasks; an emit afterwards still reaches this
    server's clients, does not raise, and warns once."""
    node = Node(redis_server.url)
    nodes.append(node)
    client = node.client()
    clients.append(client)
    assert all(task.running for task in _tasks(node.mgr))
    if ASYNC_MODE == 'threading' or MANAGER == 'asyncio':
        assert len(_task_runners(node)) == len(_tasks(node.mgr))
    for i in range(300):
        node.sio.emit('n', i)
    node.sio.shutdown()
    assert redis_server.client().xlen('socket.io') == 300
    assert [t for t in _tasks(node.mgr) if t.running] == [], _stacks()
    assert _task_runners(node) == []
    with caplog.at_level(logging.DEBUG, logger='socketio_streams'):
        node.sio.emit('after', 1)
        node.sio.emit('after', 2)
    client.wait_for('after', count=2)
    assert redis_server.client().xlen('socket.io') == 300
    dropped = [r for r in caplog.records if 'not sent to Redis' in
               r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.WARNING, logging.DEBUG]
    with pytest.raises(RuntimeError, match='closed'):
        node.mgr.fetch_sockets()


def _stacks() -> str:
    """Where every thread is (what a task that did not end waits in)."""
    frames = sys._current_frames()
    return '\n'.join(f'{thread.name}:\n' +
                     ''.join(traceback.format_stack(frames[thread.ident]))
                     for thread in threading.enumerate()
                     if thread.ident in frames)


@pytest.mark.skipif(MANAGER == 'asyncio', reason='an asyncio task is '
                    'cancelled where it waits, in a handler too: it ends')
def test_a_task_that_does_not_end_at_close_is_said(redis_server, nodes,
                                                   clients, caplog):
    """A reader held in a handler when the server shuts down cannot be cut
    short: ``shutdown()`` returns within its time and says which task
    still runs; released, it ends."""
    node = Node(redis_server.url)
    nodes.append(node)
    clients.append(node.client())
    reader = node.mgr._links.readers['socket.io']
    seen, gates = hold_reader(reader, 1)
    emitter = RedisStreamsManager(redis_server.url, write_only=True)
    emitter.emit('n', 0)
    emitter.close()
    wait_until(lambda: seen, 10, 'the reader held')
    with caplog.at_level(logging.WARNING, logger='socketio_streams'):
        node.sio.shutdown()
    assert reader.running
    assert "reader of 'socket.io': still running after close()" in \
        caplog.text
    gates[1].set()
    wait_until(lambda: not reader.running, 10, 'the reader ended')


def test_the_admin_ui_stats_task_outlives_shutdown_quietly(
        redis_server, nodes, clients, caplog):
    """python-socketio's Admin UI stats task keeps emitting (locally) after
    ``sio.shutdown()``, until the instrumentation is shut down too."""
    node = Node(redis_server.url)
    nodes.append(node)
    admin = node.sio.instrument(auth=False, server_stats_interval=0.05)
    watcher = node.client(['/admin'])
    clients.append(watcher)
    watcher.wait_for('server_stats', namespace='/admin')
    failed: list = []
    hook, threading.excepthook = threading.excepthook, failed.append
    try:
        with caplog.at_level(logging.WARNING):
            node.sio.shutdown()
            assert not node.mgr.healthy()  # closed
            seen = len(watcher.events('server_stats', '/admin'))
            watcher.wait_for('server_stats', count=seen + 3,
                             namespace='/admin')
            admin.shutdown()
    finally:
        threading.excepthook = hook
    assert failed == []
    assert not [r for r in caplog.records if r.exc_info or
                r.levelno >= logging.ERROR]


def test_flask_test_client_with_recovery_sees_emits_after_flush(
        redis_server):
    """With recovery on, local delivery waits for the stream offset;
    ``mgr.flush()`` is how a test waits for it."""
    from flask import Flask
    from flask_socketio import SocketIO, emit

    from socketio_streams import RedisStreamsManager
    mgr = RedisStreamsManager(redis_server.url,
                              connection_state_recovery=True)
    app = Flask(__name__)
    sio = SocketIO(app, async_mode=ASYNC_MODE, client_manager=mgr)

    @sio.on('ping')
    def ping(data):
        emit('pong', data)

    try:
        client = sio.test_client(app)
        client.get_received()
        client.emit('ping', 'hello')
        sio.emit('news', 1)
        assert mgr.flush()
        received = client.get_received()
        assert [(r['name'], r['args'][0]) for r in received] == [
            ('pong', 'hello'), ('news', 1)]
        offsets = [r['args'][1] for r in received]
        stored = [e[0].decode() for e in
                  redis_server.client().xrange('socket.io')]
        assert offsets == stored
        client.disconnect()
    finally:
        mgr.close()


def test_a_task_waiting_to_reconnect_ends_at_shutdown(tmp_path, nodes,
                                                      clients, caplog):
    """Redis gone, the reader waits between attempts (here 15 to 30 s):
    ``shutdown()`` ends that wait, and the reader with it."""
    server = RedisProcess(str(tmp_path / 'gone')).start()
    node = Node(server.url)
    nodes.append(node)
    clients.append(node.client())
    reader = node.mgr._links.readers['socket.io']
    reader._backoff = Backoff(base=30.0, cap=30.0)
    server.stop()
    wait_until(lambda: reader.failures, 10, 'the reader failed once')
    with caplog.at_level(logging.WARNING, logger='socketio_streams'):
        node.sio.shutdown()
    assert not reader.running
    assert 'still running after close()' not in caplog.text


@pytest.fixture
def frozen_redis(tmp_path):
    """A Redis that accepts connections but answers nothing (SIGSTOP)."""
    server = RedisProcess(str(tmp_path / 'frozen')).start()
    server.freeze()
    yield server
    server.thaw()
    server.stop()


def test_first_connection_does_not_hang_on_a_frozen_redis(frozen_redis,
                                                          nodes):
    """Pin and subscribe waits are bounded: the client is accepted well
    within a connect timeout far shorter than the Redis reply timeouts
    (15 s) it would otherwise wait for."""
    node = Node(frozen_redis.url)
    nodes.append(node)
    bound = links.PIN_TIMEOUT + links.SUBSCRIBE_WAIT
    connected = threading.Event()
    client = socketio.Client(reconnection=False)
    client.on('connect', connected.set, namespace='/chat')
    try:
        client.connect(node.url, namespaces=['/', '/chat'],
                       transports=['websocket'], wait_timeout=bound + 2)
        assert connected.is_set()
        reader = next(iter(node.mgr._links.readers.values()))
        assert reader.last_id is not None  # pinned by the clock
    finally:
        client.disconnect()


def test_exit_with_redis_unreachable_waits_once_and_says_why(tmp_path):
    """Three managers with packets they cannot write: the exit waits once
    for all of them (not once each) and each says what it lost, and why."""
    url = f'redis://127.0.0.1:{free_port()}/0'
    script = textwrap.dedent(f'''
        import atexit, time
        atexit.register(lambda: print('exit took', time.monotonic() - t))
        from socketio_streams import RedisStreamsManager
        managers = [RedisStreamsManager({url!r}, write_only=True)
                    for _ in range(3)]
        for n, mgr in enumerate(managers, 1):
            for i in range(n):
                mgr.emit('x', i)
        t = time.monotonic()
    ''')
    done = subprocess.run([sys.executable, '-c', script], timeout=30,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines()
             if 'not written to Redis' in line]
    assert sorted(int(line.split('closing with ')[1].split()[0])
                  for line in lines) == [1, 2, 3]
    assert all(': unreachable (ConnectionError' in line for line in lines)
    took = float(done.stdout.split('exit took')[1])
    # one shared wait (EXIT_WAIT = 2 s), not one per manager (6 s)
    assert took < 2 * manager_module.EXIT_WAIT
