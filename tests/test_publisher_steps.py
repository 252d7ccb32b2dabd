"""The publisher's steps: under asyncio (``steps.arun``, redis.asyncio
clients, ``AsyncRuntime``) against a real Redis, and driven by hand with
made-up replies."""
from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from typing import Any

import pytest

from socketio_streams import BufferFullError, protocol
from socketio_streams.connection import Connector
from socketio_streams.options import Options
from socketio_streams.items import Recent
from socketio_streams.publisher import Item, Publisher
from socketio_streams.runtime import AsyncRuntime, Runtime
from socketio_streams.stats import Stats
from socketio_streams.steps import arun, done

from .deployments import DEPLOYMENT
from .servers import RedisProcess

LOG = logging.getLogger('socketio_streams')
#: the tests that kill, restart or freeze the one server they talk to
STANDALONE = pytest.mark.skipif(
    DEPLOYMENT != 'standalone', reason='one server of our own: the '
    'standalone envs (the deployments run the manager-level tests)')


def AsyncConnector(url: str) -> Connector:
    """The connector of the asyncio manager."""
    return Connector(url, asyncio=True)


def _publisher(url: str, **options: Any) -> Publisher:
    return Publisher(AsyncConnector(url), AsyncRuntime(), Options(**options),
                     Stats(), LOG)


def _entry(i: int) -> Item:
    return Item('xadd', 'stream', {'i': str(i)})


def _as_read(entries: list) -> list[int]:
    """What a reader takes of the stream: an entry whose ``seq`` is not
    above the last one seen is a copy, dropped."""
    seen, kept = 0, []
    for _, fields in entries:
        seq = int(fields[protocol.SEQ.encode()])
        if seq > seen:
            seen = seq
            kept.append(int(fields[b'i']))
    return kept


def _in_asyncio(main: Any) -> None:
    """Run ``main()`` in a fresh loop; fail if a task, a connection or an
    exception was left behind."""
    async def checked() -> None:
        await main()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        assert not others, others

    errors: list = []
    gc.collect()  # earlier tests' garbage: not counted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _, context: errors.append(context))
        try:
            loop.run_until_complete(checked())
        finally:
            loop.close()
        gc.collect()
    assert errors == []
    assert [w for w in caught if issubclass(
        w.category, (ResourceWarning, RuntimeWarning))] == []


@STANDALONE
def test_order_survives_killed_connections_under_asyncio(redis_server):
    """Items put while another client kills the publisher's connection
    again and again all reach the stream, in order: copies of a batch
    written twice are dropped by ``seq``, as readers do."""
    count, kills = 3000, 5
    killer = redis_server.client()

    async def main() -> None:
        publisher = _publisher(redis_server.url)
        publisher.start()
        for i in range(count):
            await arun(publisher.put(_entry(i)))
            if i % (count // kills) == count // kills - 1:
                await asyncio.sleep(0.01)  # a batch or two on its way
                killer.client_kill_filter(_type='normal', skipme=True)
        assert await arun(publisher.flush(15))
        assert publisher._stats.snapshot()['reconnects'] >= 1
        await arun(publisher.close(5))
        assert not publisher.running

    _in_asyncio(main)
    assert _as_read(killer.xrange('stream')) == list(range(count))


@STANDALONE
def test_entries_a_restarted_redis_lost_are_written_again_under_asyncio(
        redis_server):
    """Redis restarts without persistence: the publisher finds the
    entries it had written gone (``_requeue_lost`` over redis.asyncio) and
    writes them again, in order, before what came next."""
    async def main() -> None:
        publisher = _publisher(redis_server.url)
        publisher.start()
        for i in range(100):
            await arun(publisher.put(_entry(i)))
        assert await arun(publisher.flush(5))
        redis_server.restart()
        await arun(publisher.put(_entry(100)))
        assert await arun(publisher.flush(15))
        assert publisher._stats.snapshot()['resent'] == 100
        await arun(publisher.close(5))

    _in_asyncio(main)
    assert [int(fields[b'i']) for _, fields in redis_server.client().xrange(
        'stream')] == list(range(101))


@STANDALONE
def test_put_waits_for_room_while_redis_answers_under_asyncio(redis_server):
    """A burst faster than the pipeline: ``put`` yields until the task
    made room, nothing is refused."""
    count = 1000

    async def main() -> None:
        publisher = _publisher(redis_server.url, buffer_size=20)
        publisher.start()
        await arun(publisher.put(_entry(0)))
        assert await arun(publisher.flush(5))  # connected
        for i in range(1, count):
            await arun(publisher.put(_entry(i)))
        await arun(publisher.close(15))
        assert publisher._stats.snapshot()['buffer_full'] == 0

    _in_asyncio(main)
    assert _as_read(redis_server.client().xrange('stream')) == \
        list(range(count))


def test_a_full_buffer_raises_while_redis_is_down_under_asyncio(tmp_path):
    server = RedisProcess(str(tmp_path / 'redis'))

    async def main() -> None:
        publisher = _publisher(server.url, buffer_size=10)
        publisher.start()
        for i in range(10):
            await arun(publisher.put(_entry(i)))
        with pytest.raises(BufferFullError, match='buffer_size=10'):
            await arun(publisher.put(_entry(10)))
        assert publisher._stats.snapshot()['buffer_full'] == 1
        assert publisher.buffered == 10
        server.start()
        await arun(publisher.close(15))
        assert publisher.buffered == 0 and not publisher.running

    try:
        _in_asyncio(main)
        assert _as_read(server.client().xrange('stream')) == list(range(10))
    finally:
        server.stop()


@STANDALONE
def test_close_cancels_a_task_stuck_on_a_frozen_redis(redis_server, caplog):
    """A Redis that stopped answering holds the task in a pipeline until
    the command timeout; ``close()`` does not wait for it: the task is
    cancelled, its connections closed, what was left logged."""
    async def main() -> None:
        publisher = _publisher(redis_server.url)
        publisher.start()
        await arun(publisher.put(_entry(0)))
        assert await arun(publisher.flush(5))
        redis_server.freeze()
        try:
            await arun(publisher.put(_entry(1)))
            await arun(publisher.close(0.5))
        finally:
            redis_server.thaw()
        assert not publisher.running and publisher._task.cancelled()

    with caplog.at_level(logging.ERROR, logger='socketio_streams'):
        _in_asyncio(main)
    assert 'closing with 1 packets not written' in caplog.text


def _unstarted() -> Publisher:
    """A publisher that never connects (its writer is replaced)."""
    return Publisher(Connector('redis://127.0.0.1:1/0'), Runtime(),
                     Options(), Stats(), LOG)


class _Pipe:
    def __init__(self) -> None:
        self.commands: list[tuple] = []

    def xrange(self, *args: Any, **kwargs: Any) -> None:
        self.commands.append(('xrange', *args, *kwargs.values()))

    def execute(self) -> list:
        raise AssertionError('the test sends the replies')


class _Writer:
    """One server whose every pipeline is kept, to be looked at."""

    def __init__(self) -> None:
        self.pipes: list[_Pipe] = []

    def ready(self) -> Any:
        return done()

    def node(self, key: str | None) -> str:
        return ''

    def client(self, node: str) -> Any:
        return self

    def pipeline(self, transaction: bool) -> _Pipe:
        self.pipes.append(_Pipe())
        return self.pipes[-1]


def test_requeue_lost_puts_back_what_the_server_lost_in_order():
    """Steps driven by hand: stream ``a`` still has its newest entry (one
    round trip, nothing lost); ``b`` lost its two newest, and trimmed its
    oldest (not written again); the lost go back at the head of the
    queue, in the order they were written, marked ``resent``."""
    publisher = _unstarted()
    writer = publisher._writer = _Writer()  # type: ignore[assignment]
    written = [('b', '1-1'), ('a', '1-2'), ('b', '1-3'), ('b', '1-4'),
               ('a', '1-5'), ('b', '1-6')]
    items = {}
    for stream, entry_id in written:
        items[entry_id] = Item('xadd', stream, {'id': entry_id})
        publisher._recent.add(items[entry_id], entry_id)
    publisher._queue.append(Item('xadd', 'a', {'id': 'queued'}))
    steps = publisher._requeue_lost()

    assert next(steps).__self__ is writer.pipes[-1]
    assert writer.pipes[-1].commands == [('xrange', 'b', 1),
                                         ('xrange', 'b', '1-6', '1-6')]
    call = steps.send([[(b'1-3', {})], []])  # b: oldest 1-3, no 1-6
    assert writer.pipes[-1].commands == [
        ('xrange', 'b', entry_id, entry_id)
        for entry_id in ('1-1', '1-3', '1-4', '1-6')]
    assert call.__self__ is writer.pipes[-1]
    call = steps.send([[], [(b'1-3', {})], [], []])
    assert writer.pipes[-1].commands == [('xrange', 'a', 1),
                                         ('xrange', 'a', '1-5', '1-5')]
    with pytest.raises(StopIteration) as stop:
        steps.send([[(b'1-2', {})], [(b'1-5', {})]])
    assert stop.value.value is True
    queue = list(publisher._queue)
    assert [(i.target, i.payload['id'], i.resent) for i in queue] == [
        ('b', '1-4', True), ('b', '1-6', True), ('a', 'queued', False)]
    assert [w.entry_id for w in publisher._recent] == ['1-1', '1-2', '1-3',
                                                       '1-5']
    assert publisher._stats.snapshot()['resent'] == 2


def test_requeue_lost_finds_nothing_when_the_newest_entry_is_there():
    """One round trip per stream: nothing lost, nothing put back."""
    publisher = _unstarted()
    writer = publisher._writer = _Writer()  # type: ignore[assignment]
    for entry_id in ('1-1', '1-2'):
        publisher._recent.add(Item('xadd', 'a', {}), entry_id)
    steps = publisher._requeue_lost()
    next(steps)
    with pytest.raises(StopIteration) as stop:
        steps.send([[(b'1-1', {})], [(b'1-2', {})]])
    assert stop.value.value is False
    assert len(writer.pipes) == 1 and not publisher._queue
    assert len(publisher._recent) == 2


def test_recent_entries_give_the_garbage_collector_nothing_to_walk():
    """What is kept of the entries written lately (thousands at a steady
    rate) holds no object the garbage collector tracks: their fields are
    text only, and no record is made per entry."""
    recent = Recent()
    items = [Item('xadd', 's', {'uid': 'u', 'data': '[1]', 'seq': str(i)})
             for i in range(1000)]
    for i, item in enumerate(items):
        recent.add(item, f'1-{i}')
    # What it holds, looked at directly: a count of every tracked object
    # in the process also counts what other threads allocate meanwhile.
    held = [value for column in recent._columns for value in column]
    assert len(held) == 4 * 1000
    assert not any(gc.is_tracked(value) for value in held)
    kept = list(recent)
    assert len(kept) == 1000 and kept[1].entry_id == '1-1'
    assert kept[1].item.payload is items[1].payload
