"""When the publisher's task reads the reply to what a put wrote ahead
(:mod:`socketio_streams.write_ahead`): once it is due, not before (the
next put may read it), at once for ``flush()`` or an item queued behind;
an idle task with nothing written ahead waits with no timeout, and the
first write ahead after that wakes it. Puts a burst's gap apart, twice in
a row, go by the task. Driven by hand (no I/O), then against a real
Redis, in threads and on an event loop."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from socketio_streams import raw
from socketio_streams.connection import Connector
from socketio_streams.options import Options
from socketio_streams.positions import Remote
from socketio_streams.pressure import Unread
from socketio_streams.publisher import Publisher
from socketio_streams.runtime import AsyncRuntime, Runtime
from socketio_streams.stats import Stats
from socketio_streams.steps import arun, done, run

from .deployments import DEPLOYMENT
from .test_publisher_steps import (LOG, STANDALONE, AsyncConnector, _as_read,
                                   _entry, _in_asyncio)
from .test_write_ahead import _idle


@pytest.fixture
def answered(monkeypatch) -> None:
    """Every put written ahead; every reply there when the next put
    looks."""
    def write_ahead(client: list, commands: list) -> Any:
        client.append(commands)
        return 'conn'
    monkeypatch.setattr(raw, 'write_ahead', write_ahead)
    monkeypatch.setattr(raw, 'reply_now', lambda conn: b'1-0')


def _age(publisher: Publisher, seconds: float) -> None:
    """Make what was written ahead, and the last write, older."""
    assert publisher._ahead is not None
    publisher._ahead.at -= seconds
    publisher._active_at -= seconds


@pytest.mark.usefixtures('answered')
def test_the_task_leaves_a_fresh_reply_to_the_next_put_until_it_is_due():
    publisher, _ = _idle()
    assert publisher.offer(_entry(1))
    assert publisher._take() == [] and publisher._ahead is not None
    timeout = publisher._idle_timeout()
    assert timeout is not None and 0 < timeout <= Publisher.IDLE_WAIT
    _age(publisher, Publisher.IDLE_WAIT)
    assert publisher._idle_timeout() == 0
    assert publisher._take() == [publisher._queue[0]]
    assert publisher._ahead is None and publisher._taken is not None


@pytest.mark.usefixtures('answered')
@pytest.mark.parametrize('why', ['flush', 'queued behind', 'on_written',
                                 'stopping', 'draining'])
def test_the_task_reads_a_reply_at_once_when_something_waits_for_it(
        why, monkeypatch):
    publisher, _ = _idle()
    if why == 'on_written':
        publisher.offer(_entry(1))
        publisher._queue[0].on_written = print  # as a recovery emit's
    else:
        assert publisher.offer(_entry(1))
    if why == 'flush':
        steps = publisher.flush(5)
        next(steps)  # its first wait: it asked for the reply
        assert publisher._wakeup.is_set()
    elif why == 'queued behind':
        monkeypatch.setattr(raw, 'reply_now', lambda conn: raw.NOT_YET)
        assert publisher.offer(_entry(2))
        assert publisher._wakeup.is_set() and len(publisher._queue) == 2
    elif why == 'stopping':
        publisher._stopping = True
    else:  # a cancelled task writes what is left (_drain)
        sent: list = []

        def send(batch: list) -> Any:
            sent.append(batch)
            publisher._queue.clear()
            return done()
        monkeypatch.setattr(publisher, '_send', send)
        head = publisher._queue[0]
        run(publisher._drain(1))
        assert sent == [[head]]
        return
    assert publisher._take() == [publisher._queue[0]]


@pytest.mark.usefixtures('answered')
def test_a_quiet_task_waits_untimed_and_the_next_write_ahead_wakes_it():
    publisher, asked = _idle()
    assert publisher._idle_timeout() is None  # nothing written yet
    assert publisher.offer(_entry(1))
    assert publisher._wakeup.is_set()  # to time the reply
    publisher._wakeup.clear()
    assert publisher._take() == []
    assert publisher._idle_timeout() is not None
    assert publisher.offer(_entry(2))  # reads the reply to the first
    assert not publisher._wakeup.is_set()  # the task times the reply
    _age(publisher, Publisher.IDLE_WAIT)
    assert publisher._take() == [publisher._queue[0]]
    publisher._queue.popleft()
    publisher._taken = None
    assert publisher._take() == []
    assert publisher._idle_timeout() is None and publisher._sleeping


@pytest.mark.usefixtures('answered')
def test_one_short_gap_is_written_ahead_two_in_a_row_go_by_the_task():
    """A put a burst's gap after the one written ahead may be a late
    emit (the one after it on time): written ahead too. Twice in a row, it
    is a burst: the put making the second gap goes in the task's
    pipelines."""
    publisher, asked = _idle()
    publisher.BURST_GAP = 60.0  # every gap is short
    assert publisher.offer(_entry(1)) and publisher.offer(_entry(2))
    assert len(asked) == 2 and len(publisher._queue) == 1
    assert publisher.offer(_entry(3))  # reads the reply to the second
    assert len(asked) == 2 and len(publisher._queue) == 1
    assert publisher._wakeup.is_set()
    publisher, asked = _idle()
    publisher.BURST_GAP = 0.0  # none is
    for i in range(5):
        assert publisher.offer(_entry(i))
    assert len(asked) == 5 and len(publisher._queue) == 1


class _Waits(Runtime):
    """Threads' runtime, noting the timeout of every wait."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list = []

    def wait(self, event: Any, timeout: float | None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(event, timeout)


class _AsyncWaits(AsyncRuntime):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list = []

    async def wait(self, event: Any,  # type: ignore[override]
                   timeout: float | None) -> bool:
        self.timeouts.append(timeout)
        return await super().wait(event, timeout)


def _published(publisher: Publisher) -> int:
    return publisher._stats.snapshot()['published']


def _quiet_then_put(publisher: Publisher, runtime: Any, sleep: Any,
                    kill: Any = None) -> Any:
    """Steps: one put by the task, one written ahead whose reply no put
    reads; quiet for 0.6 s (then ``kill``: the connection cut while the
    task waits untimed); one more. Returns the waits of the quiet time,
    and whether the last put was published without flush()."""
    yield from publisher.put(_entry(0))
    assert (yield from publisher.flush(5))
    yield from publisher.put(_entry(1))
    deadline = time.monotonic() + 5
    while _published(publisher) < 2:  # read by the task when due
        assert time.monotonic() < deadline
        yield lambda: sleep(0.01)
    yield lambda: sleep(0.05)
    runtime.timeouts.clear()
    yield lambda: sleep(0.6)
    quiet = list(runtime.timeouts)
    if kill is not None:
        yield kill
    yield from publisher.put(_entry(2))
    deadline = time.monotonic() + 5
    while _published(publisher) < 3 and time.monotonic() < deadline:
        yield lambda: sleep(0.01)
    read = _published(publisher) == 3
    yield from publisher.close(5)
    return quiet, read


def _check_quiet(quiet: list, read: bool) -> None:
    # before: a wait of 0.1 s after another, for as long as it was idle
    assert len(quiet) <= 1 and set(quiet) <= {None}, quiet
    assert read, 'the reply of a put written ahead after a quiet time ' \
        'was never read'


#: the publisher's connection cut while its task waits untimed: the put
#: after it meets the failure, and its packet gets there once
KILL = pytest.mark.parametrize('kill', [False, pytest.param(
    True, marks=STANDALONE)], ids=['', 'connection killed'])


def _killer(redis_server: Any, kill: bool) -> Any:
    if not kill:
        return None
    return lambda: redis_server.client().client_kill_filter(
        _type='normal', skipme=True)


def _stored_once(redis_server: Any, publisher: Publisher,
                 kill: bool) -> None:
    assert _as_read(redis_server.client().xrange('stream')) == [0, 1, 2]
    if kill:  # the put after the cut met it
        assert publisher._stats.snapshot()['reconnects'] >= 1


@KILL
def test_an_idle_publisher_does_not_wake_by_the_clock(redis_server, kill):
    runtime = _Waits()
    publisher = Publisher(Connector(redis_server.url), runtime, Options(),
                          Stats(), LOG)
    publisher.start()
    _check_quiet(*run(_quiet_then_put(publisher, runtime, time.sleep,
                                      _killer(redis_server, kill))))
    _stored_once(redis_server, publisher, kill)


@KILL
def test_under_asyncio_an_idle_publisher_does_not_wake_by_the_clock(
        redis_server, kill):
    result: list = []

    async def main() -> None:
        runtime = _AsyncWaits()
        publisher = Publisher(AsyncConnector(redis_server.url), runtime,
                              Options(), Stats(), LOG)
        publisher.start()
        result.extend(await arun(_quiet_then_put(
            publisher, runtime, asyncio.sleep,
            _killer(redis_server, kill))))
        result.append(publisher)

    _in_asyncio(main)
    _check_quiet(*result[:2])
    _stored_once(redis_server, result[2], kill)


def _connects_early(connector: Any, sleep: Any) -> Any:
    """Steps: a started publisher connects before its first packet, and
    the client that reads the positions elsewhere too; that packet goes
    on the connection made then (no set-up in its way). True if it did."""
    publisher = Publisher(connector, _Waits() if sleep is time.sleep
                          else _AsyncWaits(), Options(), Stats(), LOG)
    publisher.unread = Unread(lambda stream: None, Remote(
        connector, 'us', Options().max_len, LOG))
    publisher.start()
    deadline = time.monotonic() + 5
    while not (publisher.connected and publisher._idle):
        assert time.monotonic() < deadline, 'not connected before a packet'
        yield lambda: sleep(0.01)
    pool = connector.client().connection_pool
    assert len(pool._available_connections) + len(pool._in_use_connections)
    client = publisher._writer.client('')
    early = getattr(client, raw._KEPT)
    yield from publisher.put(_entry(0))
    assert (yield from publisher.flush(5))
    same = early is not None and getattr(client, raw._KEPT) is early
    yield from publisher.close(5)
    yield connector.close
    return same


#: a cluster's publisher connects at its first packet (the node to connect
#: to depends on it)
NOT_CLUSTER = pytest.mark.skipif(DEPLOYMENT == 'cluster',
                                 reason='no early connection on a cluster')


@NOT_CLUSTER
def test_a_publisher_connects_before_its_first_packet(redis_server):
    assert run(_connects_early(Connector(redis_server.url), time.sleep))
    assert _as_read(redis_server.client().xrange('stream')) == [0]


@NOT_CLUSTER
def test_under_asyncio_a_publisher_connects_before_its_first_packet(
        redis_server):
    result: list = []

    async def main() -> None:
        result.append(await arun(_connects_early(
            AsyncConnector(redis_server.url), asyncio.sleep)))
    _in_asyncio(main)
    assert result == [True]
    assert _as_read(redis_server.client().xrange('stream')) == [0]


@NOT_CLUSTER
def test_a_packet_put_while_connecting_early_waits_for_no_other_client(
        redis_server, monkeypatch):
    """A put comes while the task connects early (a write_only emitter's
    first packet, say): the task sends it next, without first opening
    the positions client (which its first batch does not need)."""
    connector = Connector(redis_server.url)
    publisher = Publisher(connector, Runtime(), Options(), Stats(), LOG)
    asked: list = []
    publisher.unread = Unread(lambda stream: None)
    monkeypatch.setattr(publisher.unread, 'connect',
                        lambda: asked.append('positions') or done())
    kept = raw.kept

    def put_meanwhile(client: Any) -> Any:
        publisher._queue.append(_entry(0))
        return (yield from kept(client))
    monkeypatch.setattr(raw, 'kept', put_meanwhile)
    run(publisher._connect_early())
    assert publisher.connected and asked == []
    publisher._queue.clear()  # none meanwhile: it opens that one too
    monkeypatch.setattr(raw, 'kept', kept)
    run(publisher._connect_early())
    assert asked == ['positions']
    connector.close()


def _cut_before_the_first_packet(publisher: Publisher, sleep: Any,
                                 kill: Any) -> Any:
    """Steps: once connected early (nothing sent yet), the connection is
    cut; then three packets. They reach the stream once each, in order
    (``_stored_once``), and the first put met the failure."""
    publisher.start()
    deadline = time.monotonic() + 5
    while not (publisher.connected and publisher._idle):
        assert time.monotonic() < deadline, 'not connected before a packet'
        yield lambda: sleep(0.01)
    yield kill
    for i in range(3):
        yield from publisher.put(_entry(i))
    assert (yield from publisher.flush(10))
    yield from publisher.close(5)


@NOT_CLUSTER
@STANDALONE
def test_a_connection_cut_after_connecting_early_loses_nothing(
        redis_server):
    publisher = Publisher(Connector(redis_server.url), Runtime(), Options(),
                          Stats(), LOG)
    run(_cut_before_the_first_packet(publisher, time.sleep,
                                     _killer(redis_server, True)))
    _stored_once(redis_server, publisher, True)


@NOT_CLUSTER
@STANDALONE
def test_under_asyncio_a_connection_cut_after_connecting_early_loses_nothing(
        redis_server):
    result: list = []

    async def main() -> None:
        publisher = Publisher(AsyncConnector(redis_server.url),
                              AsyncRuntime(), Options(), Stats(), LOG)
        await arun(_cut_before_the_first_packet(
            publisher, asyncio.sleep, _killer(redis_server, True)))
        result.append(publisher)
    _in_asyncio(main)
    _stored_once(redis_server, result[0], True)
