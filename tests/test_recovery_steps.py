"""Recovery's steps (taking a session back, reading a backlog) give the
same results driven by ``run`` with redis-py's sync client and by ``arun``
with its asyncio client, on the same stored session and stream."""
import asyncio
import logging

import pytest

from socketio_streams import protocol
from socketio_streams.connection import Connector
from socketio_streams.options import Options
from socketio_streams.recovery import BATCH, Hole, Recovery
from socketio_streams.steps import arun, run

from . import asyncredis

OPTIONS = Options(connection_state_recovery=True)
STREAM = OPTIONS.stream_name
LOG = logging.getLogger('test')


@pytest.fixture
def both(redis_server):
    """``both(make)``: what the steps ``make(recovery)`` return (or
    raise) under ``run``, and under ``arun``."""
    asyncredis.skip_unless_standalone()

    def outcome(call):
        try:
            return call()
        except Exception as exc:
            return exc

    def under_run(make):
        connector = Connector(redis_server.url)
        try:
            return outcome(lambda: run(make(Recovery(connector, OPTIONS,
                                                     LOG))))
        finally:
            connector.close()

    async def under_arun(make):
        connector = asyncredis.AsyncConnector(redis_server.url)
        try:
            recovery = Recovery(connector, OPTIONS, LOG)
            try:
                return await arun(make(recovery))
            except Exception as exc:
                return exc
        finally:
            await connector.aclose()

    def compare(make):
        return (under_run(make),
                asyncio.run(under_arun(make), debug=True))
    return compare


@pytest.fixture
def stream(redis_server):
    """``stream(n)``: the ids of ``n`` new entries of the stream."""
    client = redis_server.client()

    def add(n):
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd(STREAM, {'n': str(i)})
        return [protocol.as_text(i) for i in pipe.execute()]
    return add


@pytest.fixture
def store(redis_server):
    """``store(pid, offset)``: a session stored as a server keeps it."""
    client = redis_server.client()

    def put(pid, offset=None):
        client.set(OPTIONS.session_key_prefix + pid, protocol.encode_session(
            'sid1', pid, ['room'], {'user': 1}, offset))
    return put


def collect(backlog):
    """Steps: every entry of ``backlog``."""
    entries = []
    while (entry := (yield from backlog.next())) is not None:
        entries.append(entry)
    return entries


def test_take_restores_the_same_session_in_both_worlds(both, stream, store):
    ids = stream(3)

    def take(pid, offset):
        def make(recovery):
            store(pid)
            return recovery.take(pid, offset, STREAM)
        return make

    sync, in_asyncio = both(take('pid1', ids[1]))
    assert sync == in_asyncio == {'sid': 'sid1', 'pid': 'pid1',
                                  'rooms': ['room'], 'data': {'user': 1},
                                  'offset': ids[1]}
    # consumed: none the second time
    assert both(lambda r: r.take('pid1', ids[1], STREAM)) == (None, None)
    # an offset that was never in the stream: refused
    assert both(take('pid2', '1-1')) == (None, None)


def test_take_from_the_stored_offset_in_both_worlds(both, stream, store):
    ids = stream(2)

    def make(recovery):
        store('pid1', ids[0])
        return recovery.take('pid1', None, STREAM)

    sync, in_asyncio = both(make)
    assert sync == in_asyncio and sync['offset'] == ids[0]


def test_the_backlog_is_read_whole_in_batches_in_both_worlds(both, stream):
    ids = stream(BATCH * 2 + 50)
    sync, in_asyncio = both(
        lambda recovery: collect(recovery.backlog(STREAM, ids[0])))
    assert sync == in_asyncio
    assert [entry_id for entry_id, _ in sync] == ids[1:]
    assert sync[-1][1] == {b'n': str(len(ids) - 1).encode()}
    # from the last entry: nothing
    assert both(lambda recovery: collect(
        recovery.backlog(STREAM, ids[-1]))) == ([], [])


def test_a_trimmed_offset_is_a_hole_in_both_worlds(both, stream, store,
                                                   redis_server):
    ids = stream(30)
    redis_server.client().xtrim(STREAM, maxlen=10, approximate=False)
    sync, in_asyncio = both(
        lambda recovery: collect(recovery.backlog(STREAM, ids[0])))
    assert isinstance(sync, Hole) and isinstance(in_asyncio, Hole)
    assert str(sync) == str(in_asyncio)
    # no session from an offset trimmed away: given, or stored
    assert both(lambda r: r.take('pid1', ids[0], STREAM)) == (None, None)

    def stored(recovery):
        store('pid1', ids[0])
        return recovery.take('pid1', None, STREAM)
    assert both(stored) == (None, None)
    # from the first entry left, the rest is whole
    sync, in_asyncio = both(
        lambda recovery: collect(recovery.backlog(STREAM, ids[-10])))
    assert sync == in_asyncio
    assert [entry_id for entry_id, _ in sync] == ids[-9:]
