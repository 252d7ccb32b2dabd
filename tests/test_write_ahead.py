"""An emit that finds the publisher idle writes its command itself
(``Publisher._write_ahead``, ``raw.write_ahead``); its reply is read by
the next emit if it has come (``Publisher._collect``, ``raw.reply_now``),
else by the publisher's task. Against a real Redis, with the threads of
the sync world and on an event loop; and, driven by hand, when it must
not."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from functools import partial
from typing import Any

import pytest
import redis

from socketio_streams import raw
from socketio_streams.connection import Connector
from socketio_streams.items import Item
from socketio_streams.options import Options
from socketio_streams.positions import STALE, Remote
from socketio_streams.pressure import Unread
from socketio_streams.publisher import Publisher
from socketio_streams.runtime import Runtime
from socketio_streams.stats import Stats
from socketio_streams.steps import arun, done, run

from .nodes import wait_until
from .test_publisher_steps import (STANDALONE, _as_read, _entry, _in_asyncio,
                                   _publisher)

LOG = logging.getLogger('socketio_streams')


@pytest.fixture
def written(monkeypatch) -> list:
    """The connections ``raw.write_ahead`` wrote on (None: it did not)."""
    calls: list = []
    real = raw.write_ahead

    def spy(client: Any, commands: list) -> Any:
        calls.append(real(client, commands))
        return calls[-1]

    monkeypatch.setattr(raw, 'write_ahead', spy)
    return calls


def _started(url: str) -> Publisher:
    publisher = Publisher(Connector(url), Runtime(), Options(), Stats(), LOG)
    publisher.start()
    return publisher


def _one_at_a_time(publisher: Publisher, numbers: range) -> None:
    for i in numbers:
        run(publisher.put(_entry(i)))
        assert run(publisher.flush(5))


def test_an_item_put_while_the_publisher_is_idle_is_written_by_the_caller(
        redis_server, written):
    """Once connected, every item put while the task waits with nothing
    queued is written at once by the caller, and its reply read by the
    task: all in order, once."""
    publisher = _started(redis_server.url)
    try:
        # the first goes by the task, unless it connected in time
        _one_at_a_time(publisher, range(1))
        written.clear()
        _one_at_a_time(publisher, range(1, 30))
        assert len(written) == 29 and None not in written
        assert publisher._stats.snapshot()['published'] == 30
    finally:
        run(publisher.close(5))
    entries = redis_server.client().xrange('stream')
    assert [int(f[b'i']) for _, f in entries] == list(range(30))


def test_a_put_as_soon_as_flush_returns_writes_ahead(
        redis_server, written, monkeypatch):
    """The task is still busy after its batch (made slow here) when
    flush() sees the queue empty: the next put writes ahead all the same,
    where it queued for the task (a race seen in a clean-clone CI)."""
    real = Publisher._look_after

    def busy(self: Publisher) -> Any:
        yield partial(time.sleep, 0.2)
        return (yield from real(self))
    monkeypatch.setattr(Publisher, '_look_after', busy)
    publisher = _started(redis_server.url)
    try:
        run(publisher.put(_entry(0)))  # by the task, unless written ahead
        publisher.hurry()
        publisher._wakeup.set()
        assert run(publisher.flush(5))
        written.clear()
        run(publisher.put(_entry(1)))
        assert len(written) == 1 and None not in written
    finally:
        run(publisher.close(5))
    assert _as_read(redis_server.client().xrange('stream')) == [0, 1]


def test_a_burst_is_queued_behind_the_one_written_ahead(redis_server,
                                                        written):
    """Put without waiting: the first finds the task idle; most of the
    rest find it busy (or the reply to the one written ahead not there
    yet) and go in its pipelines, after it."""
    publisher = _started(redis_server.url)
    try:
        _one_at_a_time(publisher, range(1))
        for i in range(1, 2000):
            run(publisher.put(_entry(i)))
        assert run(publisher.flush(10))
        assert 1 <= len(written) < 100
    finally:
        run(publisher.close(5))
    assert _as_read(redis_server.client().xrange('stream')) == \
        list(range(2000))


@STANDALONE
def test_connections_killed_between_writes_ahead_lose_nothing(redis_server,
                                                              written):
    """The connection written ahead on is killed by another client, again
    and again: a write that fails, or whose reply never comes, is sent
    again by the task; every item reaches the stream once, in order."""
    killer = redis_server.client()
    publisher = _started(redis_server.url)
    try:
        for start in range(0, 50, 10):
            _one_at_a_time(publisher, range(start, start + 5))
            killer.client_kill_filter(_type='normal', skipme=True)
            # the reply read by the next put, or the write that fails
            _put_each_once_stored(publisher, killer,
                                  range(start + 5, start + 10))
            killer.client_kill_filter(_type='normal', skipme=True)
        assert publisher._stats.snapshot()['reconnects'] >= 1
    finally:
        run(publisher.close(5))
    assert _as_read(killer.xrange('stream')) == list(range(50))
    assert len(written) >= 20


def _in_redis(publisher: Publisher, client: Any, count: int) -> None:
    """Wait until the stream has ``count`` entries and the reply to the
    one written ahead has come, and for a gap longer than a burst's: the
    next put reads it and writes ahead, as at a steady rate."""
    wait_until(lambda: client.xlen('stream') == count, 2, f'{count} entries')
    wait_until(lambda: (lambda ahead: ahead is None or ahead.now() is not
                        raw.NOT_YET)(publisher._ahead), 2, 'the reply')
    time.sleep(publisher.BURST_GAP * 5)


class HeldLook:
    """A started publisher (max_len=400: a look at the positions every 25
    entries) whose looks wait, once begun, as on a slow Redis, until
    ``looked`` is set; ``looking`` is set when the first begins."""

    def __init__(self, url: str, monkeypatch: Any):
        self.publisher = Publisher(Connector(url), Runtime(),
                                   Options(max_len=400), Stats(), LOG)
        remote = Remote(Connector(url), 'me', 400, LOG)
        self.publisher.unread = Unread(lambda stream: None, remote)
        self.looking, self.looked = threading.Event(), threading.Event()
        real = remote.look

        def look(stream: str, count: int, waiting: bool) -> Any:
            if stream in remote._looked and \
                    remote.due(stream, count, waiting):
                self.looking.set()
                yield partial(self.looked.wait, 5)
            return (yield from real(stream, count, waiting))
        monkeypatch.setattr(remote, 'look', look)
        self.publisher.start()

    def until_looking(self, stream: Any, start: int) -> int:
        """Put entries from ``start`` on, each in Redis before the next,
        until one made a look due (it is in Redis): its number."""
        for i in range(start, start + 100):
            run(self.publisher.put(_entry(i)))
            _in_redis(self.publisher, stream, i + 1)
            if self.looking.is_set():
                return i
        raise AssertionError('no look came due')

    def close(self) -> None:
        self.looked.set()
        run(self.publisher.close(5))


def test_a_look_at_the_positions_holds_no_packet_back(
        redis_server, written, monkeypatch):
    """A put that finds a look at the readers' positions elsewhere due,
    with few unread, is written ahead all the same, and so are the puts
    while the task looks (two round trips, made slow here): each reaches
    Redis before the look ends, where they waited for it."""
    held = HeldLook(redis_server.url, monkeypatch)
    stream = redis_server.client()
    try:
        _one_at_a_time(held.publisher, range(1))
        written.clear()
        i = held.until_looking(stream, 1)
        for j in range(i + 1, i + 4):  # those put meanwhile are in too
            run(held.publisher.put(_entry(j)))
            _in_redis(held.publisher, stream, j + 1)
        held.looked.set()
        _one_at_a_time(held.publisher, range(j + 1, j + 3))
    finally:
        held.close()
    assert None not in written and len(written) == j + 2
    assert _as_read(stream.xrange('stream')) == list(range(j + 3))


@STANDALONE
def test_connections_killed_while_the_task_looks_lose_nothing(
        redis_server, monkeypatch):
    """Every connection is killed while the task is held in a look, the
    packet that made it due written ahead: that one, those put meanwhile
    and after reach the stream once each, in order."""
    held = HeldLook(redis_server.url, monkeypatch)
    stream = redis_server.client()
    try:
        _one_at_a_time(held.publisher, range(1))
        i = held.until_looking(stream, 1)
        stream.client_kill_filter(_type='normal', skipme=True)
        for j in range(i + 1, i + 4):
            run(held.publisher.put(_entry(j)))
        held.looked.set()
        _one_at_a_time(held.publisher, range(j + 1, j + 3))
    finally:
        held.close()
    assert _as_read(stream.xrange('stream')) == list(range(j + 3))


@pytest.fixture
def read_by_task(monkeypatch) -> list:
    """How many replies the task read of what was written ahead."""
    counts: list = []
    real = raw.replies

    def spy(client: Any, conn: Any, count: int) -> Any:
        counts.append(count)
        return real(client, conn, count)

    monkeypatch.setattr(raw, 'replies', spy)
    return counts


def _put_each_once_stored(publisher: Publisher, client: Any,
                          numbers: range) -> None:
    """Put one by one, each once Redis has it, and its reply has come."""
    for i in numbers:
        run(publisher.put(_entry(i)))
        while client.xlen('stream') <= i:
            pass
        _answered(publisher)


def _answered(publisher: Publisher) -> None:
    """Wait until the reply to what was written ahead has reached the
    publisher's connection (or the connection is lost)."""
    ahead = publisher._ahead
    if ahead is not None:
        try:
            ahead.conn.can_read(5)
        except Exception:
            pass


def _refused(client: Any) -> int:
    """How many commands Redis refused as WRONGTYPE so far."""
    stats = client.info('errorstats').get('errorstat_WRONGTYPE', {})
    return int(stats.get('count', 0))


def test_a_reply_that_has_come_is_read_by_the_next_put(
        redis_server, written, read_by_task, monkeypatch):
    """Puts spaced out (a steady rate): each finds the reply to the one
    before it there, reads it and writes its own; once connected, the
    task wakes for flush(), not per put (nor, here, by the clock)."""
    monkeypatch.setattr(Publisher, 'IDLE_WAIT', 60.0)
    monkeypatch.setattr(Publisher, 'BURST_GAP', 0.0)  # puts µs apart here
    client = redis_server.client()
    publisher = _started(redis_server.url)
    try:
        _one_at_a_time(publisher, range(1))  # connected
        read_by_task.clear()
        written.clear()
        _put_each_once_stored(publisher, client, range(1, 40))
        assert publisher._stats.snapshot()['published'] == 39
        assert len(publisher._queue) == 1  # the last, answered, unread
        assert run(publisher.flush(5))
        assert read_by_task == [1]
        assert len(written) == 39 and None not in written
        assert publisher._stats.snapshot()['published'] == 40
    finally:
        run(publisher.close(5))
    assert _as_read(client.xrange('stream')) == list(range(40))


def test_a_reply_no_later_put_reads_is_read_by_the_task_in_time(
        redis_server, written):
    """The last put of a run is written ahead and no put comes after it:
    the task, waking every ``IDLE_WAIT`` s, reads its reply (no flush
    asked for)."""
    publisher = _started(redis_server.url)
    try:
        _one_at_a_time(publisher, range(1))
        run(publisher.put(_entry(1)))
        assert written[-1] is not None  # written ahead
        deadline = time.monotonic() + 5  # IDLE_WAIT is 0.1 s
        while publisher._stats.snapshot()['published'] < 2:
            assert time.monotonic() < deadline, 'its reply never read'
            time.sleep(0.01)
        assert not publisher._queue
    finally:
        run(publisher.close(5))


def test_an_error_reply_read_by_a_put_is_the_task_s_to_report(
        redis_server, read_by_task, caplog, monkeypatch):
    """The key becomes a string: the reply a put reads is an error, the
    task reports it and drops that packet (the same command would be
    refused again), the queue goes on; once the key is free again,
    puts write ahead as before."""
    monkeypatch.setattr(Publisher, 'IDLE_WAIT', 60.0)  # no wake by the clock
    monkeypatch.setattr(Publisher, 'BURST_GAP', 0.0)
    client = redis_server.client()
    publisher = _started(redis_server.url)
    try:
        _one_at_a_time(publisher, range(1))
        client.delete('stream')
        client.set('stream', 'not a stream')
        before = _refused(client)
        for i in range(3):  # each once refused (and so answered)
            run(publisher.put(_entry(i)))
            while _refused(client) <= before + i:
                pass
            _answered(publisher)
        assert run(publisher.flush(5))
        assert publisher._stats.snapshot()['errors'] == 3
        assert 'WRONGTYPE' in caplog.text
        client.delete('stream')
        read_by_task.clear()
        _put_each_once_stored(publisher, client, range(10))
        assert run(publisher.flush(5))
        assert read_by_task == [1]
    finally:
        run(publisher.close(5))
    assert _as_read(client.xrange('stream')) == list(range(10))


def _takes_replies(publisher: Publisher) -> bool:
    """Whether the publisher's connection has hiredis' parser, whose
    replies a put takes from the stream (see ``raw.reply_now``)."""
    client = publisher._writer.made('stream')
    return raw._gets(getattr(client, raw._KEPT)) is not None


async def _stored_and_answered(publisher: Publisher, client: Any,
                               count: int) -> None:
    """Wait, the loop running, until Redis has ``count`` entries and the
    reply to the one written ahead has reached the publisher's stream
    (or its connection was lost)."""
    deadline = time.monotonic() + 5
    while client.xlen('stream') < count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    ahead = publisher._ahead
    while ahead is not None and not ahead.conn._reader._buffer and \
            not ahead.conn._reader.at_eof():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)


def test_under_asyncio_a_put_writes_ahead_the_next_reads_its_reply(
        redis_server, written, read_by_task, monkeypatch):
    """On the event loop as in threads: each put after the first, spaced
    out, writes its entry itself and reads the reply to the one before
    (taken from the connection's stream); the task reads only the last
    (flush), and is not woken per put. With a parser not hiredis'
    (valkey-py without libvalkey), nothing is written ahead."""
    monkeypatch.setattr(Publisher, 'IDLE_WAIT', 60.0)
    monkeypatch.setattr(Publisher, 'BURST_GAP', 0.0)
    client = redis_server.client()

    async def main() -> None:
        publisher = _publisher(redis_server.url)
        publisher.start()
        await arun(publisher.put(_entry(0)))
        assert await arun(publisher.flush(5))
        read_by_task.clear()
        written.clear()
        for i in range(1, 40):
            await arun(publisher.put(_entry(i)))
            await _stored_and_answered(publisher, client, i + 1)
        assert await arun(publisher.flush(5))
        if _takes_replies(publisher):
            assert read_by_task == [1]  # the last, at flush()
            assert len(written) == 39 and None not in written
        else:
            assert read_by_task == [] and set(written) == {None}
        assert publisher._stats.snapshot()['published'] == 40
        await arun(publisher.close(5))

    _in_asyncio(main)
    assert _as_read(client.xrange('stream')) == list(range(40))


@STANDALONE
def test_under_asyncio_killed_connections_between_writes_ahead_lose_nothing(
        redis_server, written):
    """As in threads: the connection written ahead on is killed again and
    again; what was written on it, answered or not, reaches the stream
    once, in order; a reply no later put reads is read by the task."""
    killer = redis_server.client()
    hiredis = False

    async def main() -> None:
        nonlocal hiredis
        publisher = _publisher(redis_server.url)
        publisher.start()
        await arun(publisher.put(_entry(0)))  # connected: its parser known
        await _stored_and_answered(publisher, killer, 1)
        hiredis = _takes_replies(publisher)
        for start in range(0, 50, 10):
            for i in range(max(start, 1), start + 10):
                await arun(publisher.put(_entry(i)))
                await _stored_and_answered(publisher, killer, i + 1)
                if i % 5 == 4:
                    killer.client_kill_filter(_type='normal', skipme=True)
        deadline = time.monotonic() + 5  # IDLE_WAIT is 0.1 s
        while publisher._queue:
            assert time.monotonic() < deadline, 'a reply never read'
            await asyncio.sleep(0.01)
        assert publisher._stats.snapshot()['reconnects'] >= 1
        await arun(publisher.close(5))

    _in_asyncio(main)
    assert _as_read(killer.xrange('stream')) == list(range(50))
    assert len([conn for conn in written if conn is not None]) >= 20 or \
        not hiredis


# --- when an item must wait for the task (no I/O) ---------------------------

class _Made:
    """A writer that has a client for every node."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def made(self, key: Any) -> Any:
        return self.client


def _idle(unread: Unread | None = None) -> tuple[Publisher, list]:
    """An unstarted publisher as its task leaves it idle, connected; and
    what ``raw.write_ahead`` was asked to write."""
    publisher = Publisher(Connector('redis://127.0.0.1:1/0'), Runtime(),
                          Options(max_len=400), Stats(), LOG)
    publisher._wakeup = publisher._runtime.event()
    publisher._idle = publisher.connected = True
    publisher.unread = unread
    asked: list = []
    publisher._writer = _Made(asked)  # type: ignore[assignment]
    return publisher, asked


@pytest.fixture
def asked_to_write(monkeypatch) -> None:
    def fake(client: list, commands: list) -> Any:
        client.append(commands)
        return 'conn'
    monkeypatch.setattr(raw, 'write_ahead', fake)


@pytest.mark.usefixtures('asked_to_write')
def test_an_idle_connected_publisher_writes_ahead():
    publisher, asked = _idle()
    assert publisher.offer(_entry(1))
    assert len(asked) == 1 and publisher._ahead is not None
    assert not publisher._idle
    assert publisher.offer(_entry(2))  # behind it, for the task
    assert len(asked) == 1 and len(publisher._queue) == 2
    assert publisher._take() == [publisher._queue[0]]


@pytest.mark.usefixtures('asked_to_write')
def test_the_task_is_woken_for_a_reply_only_if_a_delivery_waits_for_it(
        monkeypatch):
    """Written ahead: a plain entry leaves the task asleep (its reply is
    read later); one whose ``on_written`` delivers locally (connection
    state recovery: the entry's ID) wakes it."""
    monkeypatch.setattr(raw, 'reply_now', lambda conn: raw.NOT_YET)
    publisher, asked = _idle()
    assert publisher.offer(_entry(1)) and len(asked) == 1
    assert not publisher._wakeup.is_set()
    publisher, asked = _idle()
    assert publisher.offer(Item('xadd', 'stream', {}, print))
    assert len(asked) == 1 and publisher._wakeup.is_set()


@pytest.mark.usefixtures('asked_to_write')
def test_a_reply_not_there_yet_is_left_to_the_task(monkeypatch):
    """The next put finds no reply yet: it queues behind, wakes the task,
    which takes the one written ahead and reads its reply itself."""
    monkeypatch.setattr(raw, 'reply_now', lambda conn: raw.NOT_YET)
    publisher, asked = _idle()
    assert publisher.offer(_entry(1)) and publisher.offer(_entry(2))
    assert len(asked) == 1 and publisher._wakeup.is_set()
    assert publisher._take() == [publisher._queue[0]]
    assert publisher._ahead is None and publisher._taken is not None
    assert publisher.offer(_entry(3)) and len(asked) == 1


@pytest.mark.usefixtures('asked_to_write')
def test_a_connection_error_a_put_takes_leaves_the_packet_queued(
        monkeypatch):
    """The reply a put takes is a connection error its parser gave (Redis
    loading; an asyncio connection's stream hands it over as a reply):
    not the command's answer. The packet stays at the head of the queue,
    uncounted, and the task meets the failure (reconnects, sends it
    again); it is never dropped as refused."""
    loading = redis.exceptions.BusyLoadingError(
        'Redis is loading the dataset in memory')
    monkeypatch.setattr(raw, 'reply_now', lambda conn: loading)
    publisher, asked = _idle()
    assert publisher.offer(_entry(1)) and publisher.offer(_entry(2))
    assert publisher._ahead is not None and publisher._wakeup.is_set()
    failures: list = []

    def on_failure(exc: Exception) -> Any:
        failures.append(exc)
        return done()
    monkeypatch.setattr(publisher, '_on_failure', on_failure)
    run(publisher._send(publisher._take()))
    assert failures == [loading]
    assert [item.payload['i'] for item in publisher._queue] == ['1', '2']
    stats = publisher._stats.snapshot()
    assert stats['published'] == 0 and stats['errors'] == 0


@pytest.mark.usefixtures('asked_to_write')
@pytest.mark.parametrize('state', ['failures', 'check_recent', 'stopping',
                                   'not connected', 'queued'])
def test_no_write_ahead_while_the_task_has_something_to_do_first(state):
    publisher, asked = _idle()
    if state == 'failures':
        publisher.failures = 1
    elif state == 'check_recent':
        publisher._check_recent = True
    elif state == 'stopping':
        publisher._stopping = True
    elif state == 'not connected':
        publisher.connected = False
    else:
        publisher._queue.append(_entry(0))
    assert publisher.offer(_entry(1))
    assert asked == [] and publisher._ahead is None


@pytest.mark.usefixtures('asked_to_write')
def test_no_write_ahead_while_a_reader_here_is_behind():
    """max_len=400: more than 100 of ours unread by the reader here goes
    to the task (which waits for the reader)."""
    unread = Unread(lambda stream: '1-0')  # read up to our first entry
    publisher, asked = _idle(unread)
    for i in range(2, 103):
        unread.wrote('stream', f'{i}-0')
    assert publisher.offer(_entry(1)) and asked == []
    unread = Unread(lambda stream: '102-0')  # caught up
    publisher, asked = _idle(unread)
    for i in range(2, 103):
        unread.wrote('stream', f'{i}-0')
    assert publisher.offer(_entry(1)) and len(asked) == 1


def test_remote_positions_are_due_first_then_per_every_or_stale(
        monkeypatch):
    """``due`` says when ``look`` would read (or first note) the
    positions: then an item goes by the task if more than half the limit
    is unread, else it goes first and the task looks after it."""
    remote = Remote(Connector('redis://127.0.0.1:1/0'), 'me', 400, LOG)
    assert remote.due('stream', 0)
    run(remote.look('stream', 0, False))  # the first: noted, no I/O
    assert not remote.due('stream', 24)
    assert remote.due('stream', 25)  # every(400) of ours since
    now = time.monotonic()
    monkeypatch.setattr(time, 'monotonic', lambda: now + STALE)
    assert remote.due('stream', 0)
    unread = Unread(lambda stream: '0-0', remote)  # read nothing yet
    for i in range(1, 51):  # 50: half the limit (400 // 4)
        unread.wrote('stream', f'{i}-0')
    assert unread.clear(Item('xadd', 'stream', {}), 400)
    assert unread.looks_due()  # the task's, after the send
    unread.wrote('stream', '51-0')
    assert not unread.clear(Item('xadd', 'stream', {}), 400)
    assert unread.clear(Item('publish', 'channel', 'x'), 400)
