"""The reader and the subscriber in the asyncio world: the same steps as
the sync ones, driven on an event loop over ``redis.asyncio`` clients."""
from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from functools import partial

import pytest
import redis.asyncio

from socketio_streams.connection import Connector
from socketio_streams.options import Options
from socketio_streams.reader import StreamReader
from socketio_streams.subscriber import Subscriber
from socketio_streams.runtime import AsyncRuntime
from socketio_streams.stats import Stats
from socketio_streams.steps import arun

from .asyncmode import ASYNC_MODE
from .deployments import DEPLOYMENT

pytestmark = pytest.mark.skipif(
    ASYNC_MODE != 'threading' or DEPLOYMENT != 'standalone',
    reason='asyncio, on one plain server (threading, standalone)')

LOG = logging.getLogger('socketio_streams.test_async_reader')
KEY = 'socket.io'
#: the client name of the connections the tasks open
NAME = 'under-test'


def AsyncConnector(url: str, **kwargs) -> Connector:
    """The connector of the asyncio manager."""
    return Connector(url, asyncio=True, **kwargs)


@pytest.fixture
def run_loop(caplog):
    """``run_loop(coroutine)``: ``asyncio.run`` it, then check that no
    task was left pending or connection unclosed (asyncio's log, and
    ResourceWarnings once the garbage is collected)."""
    def run(coro):
        gc.collect()  # earlier tests' garbage: not counted
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter('always', ResourceWarning)
            with caplog.at_level(logging.DEBUG, logger='asyncio'):
                asyncio.run(coro)
                gc.collect()
        assert [str(w.message) for w in seen
                if issubclass(w.category, ResourceWarning)] == []
        assert [r.getMessage() for r in caplog.records
                if r.name == 'asyncio' and r.levelno >= logging.WARNING] \
            == []
    return run


async def until(predicate, message: str, timeout: float = 10.0):
    """Poll ``predicate`` (plain or async) until truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f'timed out waiting for {message}')
        await asyncio.sleep(0.01)


async def blocked(admin, command: str) -> set[str]:
    """The ids of the connections now blocked in ``command``."""
    return {c['id'] for c in await admin.client_list()
            if c.get('cmd') == command}


async def opened(admin) -> list[str]:
    """The last commands of the connections the tasks opened."""
    return [c['cmd'] for c in await admin.client_list()
            if c.get('name') == NAME]


def connector(url: str) -> AsyncConnector:
    return AsyncConnector(url, redis_options={'client_name': NAME})


def make_reader(url: str, seen: list, hold: asyncio.Event | None = None,
                **options) -> StreamReader:
    """A reader of ``KEY`` whose handler is steps (as the manager's will
    be), recording ``(entry_id, fields)``, then waiting for ``hold``."""
    def handle(key, entry_id, fields):
        yield partial(asyncio.sleep, 0)
        seen.append((entry_id, fields))
        if hold is not None:
            yield hold.wait
    return StreamReader(KEY, connector(url), AsyncRuntime(),
                        Options(**options), Stats(), LOG, handle)


async def stop(task) -> None:
    task.stop()
    assert await arun(task.join(10))
    await asyncio.wait([task._task], timeout=10)
    assert task._task.done() and not task.running


def test_reads_in_order_and_resumes_after_a_kill(redis_server, run_loop):
    """Entries written by another client arrive in order; after CLIENT
    KILL of its connection the reader resumes where it was: none lost,
    none twice."""
    async def main():
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        seen: list = []
        reader = make_reader(redis_server.url, seen, read_count=3)
        assert await arun(reader.pin(5)) == '0-0'  # on a client of its own
        assert await opened(admin) == []
        reader.start()
        ids = [await admin.xadd(KEY, {'n': i}) for i in range(10)]
        await until(lambda: len(seen) == 10, 'the first ten')
        first = await until(partial(blocked, admin, 'xread'), 'an XREAD')
        assert await admin.client_kill_filter(_type='normal', skipme=True)
        ids += [await admin.xadd(KEY, {'n': i}) for i in range(10, 20)]
        await until(lambda: len(seen) == 20, 'the next ten')
        again = await until(partial(blocked, admin, 'xread'), 'an XREAD')
        assert first.isdisjoint(again)  # a new connection
        assert reader._stats.snapshot()['reconnects'] == 1
        assert [entry_id for entry_id, _ in seen] == \
            [i.decode() for i in ids]
        assert [f[b'n'] for _, f in seen] == \
            [str(i).encode() for i in range(20)]
        await stop(reader)
        await admin.aclose()
    run_loop(main())


def test_a_deleted_stream_is_trouble_until_it_is_back(redis_server,
                                                      run_loop):
    """The stream deleted under the reader is noticed (``trouble``) at a
    BLOCK timeout; once written again it is read from its start."""
    async def main():
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        seen: list = []
        reader = make_reader(redis_server.url, seen, block_time_ms=50)
        await admin.xadd(KEY, {'n': 0})
        await arun(reader.pin())
        reader.start()
        await admin.xadd(KEY, {'n': 1})
        await until(lambda: len(seen) == 1, 'the entry')
        await admin.delete(KEY)
        await until(lambda: reader.trouble, 'the trouble noticed')
        assert 'vanished' in reader.trouble and reader.last_id == '0-0'
        back = await admin.xadd(KEY, {'n': 2})
        await until(lambda: len(seen) == 2, 'the new stream read')
        assert seen[1][0] == back.decode() and reader.trouble is None
        await stop(reader)
        await admin.aclose()
    run_loop(main())


def test_entries_trimmed_unread_are_counted(redis_server, run_loop):
    """While the handler is held, MAXLEN trims entries the reader has not
    read: it counts exactly those as a gap and reads the rest."""
    async def main():
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        seen: list = []
        release = asyncio.Event()
        reader = make_reader(redis_server.url, seen, release, read_count=1,
                             max_len=10)
        await arun(reader.pin())
        reader.start()
        await admin.xadd(KEY, {'n': 0})
        await until(lambda: seen, 'the first entry')
        ids = [await admin.xadd(KEY, {'n': i}, maxlen=10, approximate=False)
               for i in range(1, 101)]
        release.set()
        await until(lambda: len(seen) == 11, 'the ten kept')
        assert [e for e, _ in seen[1:]] == [i.decode() for i in ids[-10:]]
        assert reader._stats.snapshot()['gaps'] == 90
        await stop(reader)
        await admin.aclose()
    run_loop(main())


@pytest.mark.parametrize('sharded', [False, True])
def test_subscriber_receives_and_resubscribes_after_a_kill(
        redis_server, run_loop, sharded):
    """PUB/SUB messages reach the handler; after CLIENT KILL of the
    subscription the channel is subscribed again and messages flow."""
    async def main():
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        got: list = []
        sub = Subscriber(connector(redis_server.url), AsyncRuntime(),
                         Options(use_sharded_pubsub=sharded), Stats(), LOG,
                         lambda channel, data: got.append((channel, data)))
        publish = admin.spublish if sharded else admin.publish
        numsub = admin.pubsub_shardnumsub if sharded else \
            admin.pubsub_numsub

        async def subscribed():
            (_channel, count), = await numsub('ch')
            return count

        sub.add('ch')
        sub.start()
        assert await arun(sub.wait_subscribed(5))
        await until(subscribed, 'the subscription')
        await publish('ch', b'one')
        await until(lambda: got, 'the first message')
        before = await admin.client_list(_type='pubsub')
        assert await admin.client_kill_filter(_type='pubsub')
        await until(subscribed, 'the subscription again')
        after = await admin.client_list(_type='pubsub')
        assert {c['id'] for c in before}.isdisjoint(c['id'] for c in after)
        await publish('ch', b'two')
        await until(lambda: len(got) == 2, 'the second message')
        assert got == [('ch', b'one'), ('ch', b'two')]
        assert sub._stats.snapshot()['reconnects'] == 1
        await stop(sub)
        assert not await subscribed()
        await admin.aclose()
    run_loop(main())


def test_stop_ends_blocked_tasks_at_once(redis_server, run_loop):
    """stop() + join() end a reader blocked in a long XREAD, one in its
    handler and a subscriber, their connections closed; one stopped
    before it ran ends too."""
    async def main():
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        reader = make_reader(redis_server.url, [], block_time_ms=600_000)
        seen: list = []
        handling = make_reader(redis_server.url, seen, asyncio.Event())
        await admin.xadd(KEY, {'n': 0})
        handling.last_id = '0-0'
        handling.start()
        sub = Subscriber(connector(redis_server.url), AsyncRuntime(),
                         Options(), Stats(), LOG, lambda *_: None)
        early = make_reader(redis_server.url, [])
        await arun(reader.pin())
        reader.start()
        sub.add('ch')
        sub.start()
        early.start()
        await stop(early)
        await until(partial(blocked, admin, 'xread'), 'an XREAD')
        assert await arun(sub.wait_subscribed(5))
        await until(lambda: seen, 'an entry in the handler')
        await stop(handling)
        await stop(reader)
        await stop(sub)
        assert await opened(admin) == []
        await admin.aclose()
    run_loop(main())
