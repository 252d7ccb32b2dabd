"""The asyncio manager: AsyncServers under uvicorn with real clients, in
one cluster with sync servers; the event loop never blocked; a clean
close."""
from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial
from typing import Any

import pytest
import socketio
import websocket

from socketio_streams import AckTimeoutError, AsyncRedisStreamsManager

from .async_nodes import AsyncNode, Loop
from .asyncmode import ASYNC_MODE
from .deployments import DEPLOYMENT
from .nodes import NAMESPACES, SyncNode, settle, wait_until


@pytest.fixture
def make_async(redis_server):
    made: list[AsyncNode] = []

    def make(**options) -> AsyncNode:
        node = AsyncNode(redis_server.url, NAMESPACES, **options)
        made.append(node)
        return node
    yield make
    for node in made:
        node.stop()


@pytest.fixture
def make_sync(redis_server):
    made: list[SyncNode] = []

    def make(**options) -> SyncNode:
        node = SyncNode(redis_server.url, **options)
        made.append(node)
        return node
    yield make
    for node in made:
        node.stop()


@pytest.mark.skipif(ASYNC_MODE != 'threading', reason='an asyncio client '
                    '(aiohttp) in a process monkey patched by eventlet or '
                    'gevent: the threading envs run it')
def test_async_clients_of_async_servers_get_each_broadcast_once(make_async):
    nodes = [make_async(), make_async()]

    async def main() -> list:
        got: list = [[], []]
        clients = []
        for i, node in enumerate(nodes):
            client = socketio.AsyncClient(reconnection=False)
            client.on('news', lambda *args, i=i: got[i].append(args))
            client.on('bin', lambda *args, i=i: got[i].append(args))
            await client.connect(node.url, transports=['websocket'],
                                 wait_timeout=10)
            clients.append(client)
        await clients[1].call('join', 'red')
        nodes[0].mgr.emit('news', {'n': 1})
        nodes[0].mgr.emit('news', 'red only', to='red')
        nodes[1].mgr.emit('bin', b'\x00\xff')
        for _ in range(500):
            if len(got[0]) >= 2 and len(got[1]) >= 3:
                break
            await asyncio.sleep(0.01)
        for client in clients:
            await client.disconnect()
        return got

    got = asyncio.run(main())
    assert got[0] == [({'n': 1},), (b'\x00\xff',)]
    assert sorted(map(repr, got[1])) == sorted(map(repr, [
        ({'n': 1},), ('red only',), (b'\x00\xff',)]))


def test_one_cluster_of_sync_and_async_servers(make_async, make_sync,
                                               clients):
    sync, aio = make_sync(), make_async()
    for node in (sync, aio):
        clients.append(node.client(answers={'ask': lambda x: f'{x}!'}))
    clients[0].sio.call('join', 'r0')
    clients[1].sio.call('join', 'r1')
    # broadcasts and rooms, each way
    sync.sio.emit('from', 'sync')
    aio.sio.emit('from', 'async')
    aio.sio.emit('room', 1, to='r0')
    sync.sio.emit('room', 2, to='r1')
    settle(sync, clients)
    settle(aio, clients)
    for client in clients:
        assert sorted(client.events('from')) == [('async',), ('sync',)]
    assert clients[0].events('room') == [(1,)]
    assert clients[1].events('room') == [(2,)]
    # cluster-wide calls, each way
    sids = sorted(c.sid() for c in clients)
    assert sorted(s.sid for s in sync.mgr.fetch_sockets()) == sids
    assert sorted(s.sid for s in aio.mgr.fetch_sockets()) == sids
    assert sync.mgr.server_count() == aio.mgr.server_count() == 2
    assert sorted(aio.mgr.emit_with_ack('ask', 'a', timeout=5)) == \
        ['a!', 'a!']
    assert sorted(sync.mgr.emit_with_ack('ask', 's', timeout=5)) == \
        ['s!', 's!']
    aio.mgr.sockets_join('both', to='r0')
    wait_until(lambda: 'both' in sync.mgr.get_rooms(clients[0].sid(), '/'))
    [remote] = sync.mgr.fetch_sockets(to='r1')
    remote.emit('direct', 'to async')
    clients[1].wait_for('direct')


def test_server_side_events_between_sync_and_async(make_async, make_sync):
    sync, aio = make_sync(), make_async()

    async def handler(x):  # a coroutine function on the async server
        await asyncio.sleep(0)
        return f'async got {x}'

    aio.mgr.on('hello', handler)
    sync.mgr.on('hello', lambda x: f'sync got {x}')
    # on() cannot wait on the loop: the async server subscribes in a task
    # (a call of its own waits for it)
    assert aio.mgr.server_count() == 2
    answers: list = []
    sync.mgr.server_side_emit('hello', 1,
                              callback=lambda err, r: answers.append(
                                  (err, r)))
    wait_until(lambda: answers)
    assert answers == [(None, ['async got 1'])]

    async def ask():
        done: asyncio.Future = asyncio.get_running_loop().create_future()

        async def callback(err, responses):  # a coroutine callback
            done.set_result((err, responses))
        await aio._mgr.server_side_emit('hello', 2, callback=callback)
        return await asyncio.wait_for(done, 5)
    assert aio.loop.run(ask()) == (None, ['sync got 2'])


def test_remote_socket_methods_are_coroutines(make_async, make_sync,
                                              clients):
    sync, aio = make_sync(), make_async()
    clients.append(sync.client())

    async def use() -> None:
        [remote] = await aio._mgr.fetch_sockets()
        await remote.join('joined')
        await remote.emit('hi', 'there')
    aio.loop.run(use())
    clients[0].wait_for('hi')
    wait_until(lambda: 'joined' in sync.mgr.get_rooms(clients[0].sid(), '/'))


def test_fetch_sockets_timeout_is_an_ack_timeout_error(make_async,
                                                       redis_server):
    aio = make_async()
    redis_server.freeze()
    try:
        with pytest.raises(AckTimeoutError):
            aio.mgr.fetch_sockets(timeout=0.5)
    finally:
        redis_server.thaw()


class _SlowCallbacks:
    """Callbacks of one loop's thread that held it: more than ``cpu`` s
    of the thread's own CPU time (work, whatever else the host runs), or
    more than ``wall`` s by the clock (a blocking call). asyncio's debug
    mode reports by the clock alone, which a loaded host makes noisy."""

    def __init__(self, loop: Loop, cpu: float = 0.05, wall: float = 0.25):
        self.reports: list[str] = []
        self._thread, self._cpu, self._wall = loop.thread, cpu, wall
        self._run = asyncio.events.Handle._run

    def __enter__(self) -> '_SlowCallbacks':
        run, reports = self._run, self.reports

        def timed(handle: asyncio.events.Handle) -> None:
            if threading.current_thread() is not self._thread:
                return run(handle)
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return run(handle)
            finally:
                wall, cpu = (time.perf_counter() - wall,
                             time.thread_time() - cpu)
                if cpu > self._cpu or wall > self._wall:
                    reports.append(f'{handle!r:.200} took {wall:.3f} s '
                                   f'({cpu:.3f} s CPU)')
        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        asyncio.events.Handle._run = self._run  # type: ignore


def test_disconnect_sockets_close_closes_the_websocket(make_async,
                                                       make_sync):
    """``close=True`` ends the connection: a client that leaves it to the
    server to close the websocket on engine.io's CLOSE packet (as
    socket.io-client does) is not left connected."""
    node = make_async()
    ws = websocket.create_connection(
        node.url.replace('http', 'ws', 1) +
        '/socket.io/?EIO=4&transport=websocket', timeout=5)
    try:
        assert ws.recv().startswith('0')  # engine.io OPEN
        ws.send('40')  # socket.io CONNECT to /
        assert ws.recv().startswith('40')
        make_sync().mgr.disconnect_sockets(close=True)
        assert ws.recv() == '1'  # engine.io CLOSE
        opcode, _frame = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
    finally:
        ws.close(timeout=0.05)


@pytest.mark.skipif(DEPLOYMENT != 'standalone', reason='on one plain '
                    'server of its own: it stops it, and TLS encryption in '
                    "the loop's callbacks is asyncio's, not this library's")
def test_the_loop_is_never_blocked_in_a_burst_or_an_outage(
        redis_server, make_sync, clients):
    loop = Loop(debug=True)
    # a full collection of the test process's heap (pytest, hypothesis,
    # selenium...) takes ~100 ms, charged to whichever callback triggered
    # it: a server's heap is its own, frozen here, so that what is
    # measured is this library's work
    gc.freeze()
    sync = make_sync()
    clients.append(sync.client())
    node = None
    try:
        with _SlowCallbacks(loop) as slow:
            node = AsyncNode(redis_server.url, NAMESPACES, loop=loop)
            node.mgr.flush(5)

            async def burst(first: int, count: int) -> None:
                for i in range(first, first + count):
                    await node._mgr.emit('n', i)
            loop.run(burst(0, 2000))
            redis_server.stop()
            loop.run(burst(2000, 200))  # buffered while Redis is down
            loop.run(asyncio.sleep(1.0))  # readers and publisher retrying
            redis_server.start()
            assert node.mgr.flush(20)
            wait_until(lambda: len(clients[0].events('n')) >= 2200, 20)
    finally:
        gc.unfreeze()
        if node is not None:
            node.stop()
        else:
            loop.stop()
    assert [args[0] for args in clients[0].events('n')] == list(range(2200))
    assert slow.reports == []


def test_a_burst_of_emits_lets_the_loop_turn(make_async):
    """An emit does not wait for Redis, so a burst of them is one long run
    of the caller's task: the publisher's puts let the loop turn now and
    then (every 25 emits, at least 0.7 ms apart: far more often than the
    burst lasts), for the publisher's task and the others."""
    node = make_async()
    count = 3000

    async def burst() -> tuple[int, float]:
        ticks = []
        done = False

        async def ticker() -> None:
            while not done:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0)
        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before, start = len(ticks), time.perf_counter()
        for i in range(count):
            await node._mgr.emit('n', i)
        turns, took = len(ticks) - before, time.perf_counter() - start
        done = True
        await task
        return turns, took
    turns, took = node.loop.run(burst())
    # (3000 emits take some 30 ms: about 40 turns of the loop, or one per
    # 25 emits where they are slower; none if the puts never paused)
    assert turns >= min(10, took / 0.0007 / 2), (turns, took)
    assert node.mgr.flush(10)


CLEAN_CLOSE = textwrap.dedent('''
    import asyncio, gc, sys, warnings
    import socketio
    from socketio_streams import AsyncRedisStreamsManager

    warnings.simplefilter('always')
    URL = sys.argv[1]
    # made before any loop runs, as at a module's top level
    mgr = AsyncRedisStreamsManager(URL, connection_state_recovery=True)
    sio = socketio.AsyncServer(async_mode='asgi', client_manager=mgr)
    emitter = AsyncRedisStreamsManager(URL, write_only=True)

    @mgr.on('ping')
    async def ping(x):
        return x

    async def main():
        mgr.initialize()
        await emitter.emit('hello', 1)
        assert await mgr.server_count() >= 1
        await mgr.fetch_sockets(timeout=1)
        await mgr.emit('to all', 2)
        assert await emitter.flush(5) and await mgr.flush(5)
        await emitter.close()
        await sio.shutdown()  # closes mgr
        print('closed', mgr.stats()['published'])

    asyncio.run(main(), debug=True)
    gc.collect()
''')


def test_close_ends_every_task_and_connection_cleanly(redis_server, tmp_path):
    script = tmp_path / 'clean_close.py'
    script.write_text(CLEAN_CLOSE)
    env = {**os.environ, 'PYTHONWARNINGS': 'always', 'PYTHONASYNCIODEBUG': '1'}
    done = subprocess.run([sys.executable, '-X', 'dev', str(script),
                           redis_server.url], capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert 'closed' in done.stdout
    for bad in ('Task was destroyed', 'Unclosed', 'never awaited',
                'ResourceWarning', 'Traceback'):
        assert bad not in done.stderr, done.stderr


def test_a_cancelled_caller_loses_no_queued_packet(make_async, make_sync,
                                                   clients):
    sync, aio = make_sync(), make_async()
    clients.append(sync.client())

    async def emit_then_cancel() -> None:
        for i in range(100):
            await aio._mgr.emit('q', i)
        waiter = asyncio.ensure_future(aio._mgr.flush(10))
        await asyncio.sleep(0)
        waiter.cancel()
    aio.loop.run(emit_then_cancel())
    wait_until(lambda: len(clients[0].events('q')) >= 100)
    assert [a[0] for a in clients[0].events('q')] == list(range(100))


def test_the_manager_can_be_made_before_the_loop(redis_server):
    mgr = AsyncRedisStreamsManager(redis_server.url, write_only=True)

    async def use() -> int:
        await mgr.emit('x', 1)
        assert await mgr.flush(5)
        await mgr.close()
        return mgr.stats()['published']
    assert asyncio.run(use()) == 1


def test_a_server_counts_itself_before_its_listening_task_ran(
        redis_server):
    # initialize() can only start listening in a task: server_count()
    # right after it waits for this server's own SUBSCRIBE all the same
    mgr = AsyncRedisStreamsManager(  # alone on its channels
        redis_server.url, channel_prefix=f'alone-{os.getpid()}')
    sio = socketio.AsyncServer(async_mode='asgi', client_manager=mgr)
    soon = mgr._soon

    def late(steps: Any) -> None:  # the task runs late, as on a busy loop
        def later() -> Any:
            yield partial(asyncio.sleep, 0.5)
            yield from steps
        soon(later())
    mgr._soon = late  # type: ignore[method-assign]

    async def count() -> int:
        mgr.initialize()
        try:
            return await mgr.server_count()
        finally:
            await sio.shutdown()
    assert asyncio.run(count()) == 1


@pytest.mark.skipif(DEPLOYMENT != 'standalone',
                    reason='a plain client of one server')
def test_a_given_asyncio_client_is_used_and_a_sync_one_refused(
        redis_server, make_sync, clients):
    import redis
    import redis.asyncio
    sync = make_sync()
    clients.append(sync.client())
    with pytest.raises(TypeError, match='RedisStreamsManager'):
        AsyncRedisStreamsManager(client=redis.Redis.from_url(
            redis_server.url))

    async def emit() -> None:
        given = redis.asyncio.Redis.from_url(redis_server.url)
        mgr = AsyncRedisStreamsManager(client=given, write_only=True)
        await mgr.emit('via', 'given client')
        assert await mgr.flush(5)
        await mgr.close()
        assert await given.ping()  # still the caller's to use and close
        await given.aclose()
    asyncio.run(emit())
    clients[0].wait_for('via')


DRAIN = textwrap.dedent('''
    import asyncio, sys
    from socketio_streams import AsyncRedisStreamsManager

    async def main():
        mgr = AsyncRedisStreamsManager(sys.argv[1], write_only=True,
                                       stream_name=sys.argv[2])
        for i in range(2000):
            await mgr.emit('x', i)
        # neither flush() nor close(): asyncio.run cancels every task

    asyncio.run(main())
''')


def test_what_is_queued_is_written_when_the_loop_ends_unclosed(
        redis_server, tmp_path):
    script = tmp_path / 'drain.py'
    script.write_text(DRAIN)
    stream = f'drain-{os.getpid()}-{time.monotonic_ns()}'
    done = subprocess.run([sys.executable, str(script), redis_server.url,
                           stream], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'the manager was not closed' in done.stderr
    # a batch in flight when the task was cancelled is written again:
    # readers drop such copies by their seq
    seqs = {fields[b'seq'] for _, fields in
            redis_server.client().xrange(stream)}
    assert len(seqs) == 2000


def test_a_valkey_asyncio_cluster_client_is_refused_with_the_way_out():
    """valkey-py's asyncio cluster client has no PUB/SUB: a clear error
    at once, not a subscriber failing for ever."""
    with pytest.raises(ValueError, match='redis\\+cluster://'):
        AsyncRedisStreamsManager('valkey+cluster://127.0.0.1:7000')
    AsyncRedisStreamsManager('redis+cluster://127.0.0.1:7000')  # no I/O yet
