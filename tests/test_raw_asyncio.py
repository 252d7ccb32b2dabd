"""socketio_streams.raw over redis.asyncio: a command is written at once
(not in ``wait_for``'s task), a large one waits for the drain, and a lost
connection still raises and is not kept."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from socketio_streams import raw
from socketio_streams.steps import arun

from . import test_raw
from .test_raw import BATCH, counted_reads

try:
    import uvloop
except ImportError:  # pragma: no cover - a test dependency
    uvloop = None

server = test_raw.server  # the fixture
#: the event loops a connection's transport and stream come from
LOOPS = ['asyncio', pytest.param('uvloop', marks=pytest.mark.skipif(
    uvloop is None, reason='uvloop is not installed'))]


def _run(main, loop: str) -> None:
    (uvloop.run if loop == 'uvloop' else asyncio.run)(main())


def test_commands_are_written_at_once_and_large_ones_drained(server):
    async def main():
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=5)
        conn = await arun(raw.kept(client))
        calls = []
        send = conn.send_packed_command

        def spy(command, check_health=True):
            calls.append(sum(map(len, command)))
            return send(command, check_health)
        conn.send_packed_command = spy
        assert await arun(raw.command(client, 'ECHO', 'x')) == b'x'
        assert calls == []  # written directly, not through wait_for
        big = 'v' * (128 * raw.DRAIN_ABOVE)  # 8 MiB: more than a socket takes
        replies = await arun(raw.pipeline(client, [
            ('SET', 'big', big), ('STRLEN', 'big'), ('ECHO', 'after')]))
        assert replies == [b'OK', len(big), b'after']
        assert calls == [0]  # drained: the transport held the rest
        await client.aclose()
    asyncio.run(main())


def test_a_lost_connection_raises_and_is_not_kept(server):
    async def main():
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=5)
        first = await arun(raw.kept(client))
        await arun(raw.command(client, 'CLIENT', 'SETNAME', 'kept'))
        admin = server.client()
        admin.client_kill_filter(_type='normal', skipme=True)
        with pytest.raises(redis.exceptions.ConnectionError):
            await arun(raw.command(client, 'ECHO', 'x'))
        assert first not in client.connection_pool._in_use_connections
        assert await arun(raw.command(client, 'ECHO', 'again')) == b'again'
        await client.aclose()
    asyncio.run(main())


def test_a_pipelines_replies_held_already_are_taken_as_they_are(server):
    """The replies of a pipeline, error replies in their place, are those
    of redis-py's pipeline; after the first, those the parser holds
    already are not read through ``read_response`` (its timeout each)."""
    async def main():
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=5)
        await client.set('string', 'x')
        calls = counted_reads(await arun(raw.kept(client)))
        ours = await arun(raw.pipeline(client, BATCH))
        assert 1 <= len(calls) < 20
        pipe = client.pipeline(transaction=False)
        for args in BATCH:
            pipe.execute_command(*args)
        theirs = await pipe.execute(raise_on_error=False)
        assert [type(r) for r in ours] == [type(r) for r in theirs]
        assert sum(isinstance(r, redis.exceptions.ResponseError)
                   for r in ours) == 4
        assert await arun(raw.command(client, 'ECHO', 'in step')) == \
            b'in step'
        await client.aclose()
    asyncio.run(main())


def test_a_connection_error_held_is_raised_an_error_reply_is_not():
    loading = redis.exceptions.BusyLoadingError('LOADING')
    for reply in (loading, [loading]):
        with pytest.raises(redis.exceptions.BusyLoadingError):
            raw._raise_unless_reply(reply)
    for reply in (redis.exceptions.ResponseError('WRONGTYPE'), b'1-0', [],
                  [b'x', loading], 7):
        raw._raise_unless_reply(reply)


async def _until_reply(conn, timeout: float = 5.0):
    """``reply_now`` until it gives a reply, the loop running between."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (reply := raw.reply_now(conn)) is raw.NOT_YET:
        assert asyncio.get_running_loop().time() < deadline, 'no reply'
        await asyncio.sleep(0.001)
    return reply


@pytest.mark.parametrize('loop', LOOPS)
@pytest.mark.parametrize('parser', ['hiredis', 'python'])
def test_written_ahead_on_the_loop_its_reply_is_taken_from_the_stream(
        server, parser, loop, monkeypatch):
    """``write_ahead`` writes into an asyncio connection's transport at
    once; ``reply_now`` takes the reply from what the loop has read into
    its stream (hiredis), nothing before it has come, an error reply in
    its place, nothing twice. With another parser, nothing is written
    ahead (the reply could not be taken so: the publisher's task sends
    it, and reads the reply)."""
    async def main():
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=5)
        conn = await arun(raw.kept(client))
        if parser == 'python':  # as raw sees a parser not hiredis'
            monkeypatch.setattr(raw, '_gets', lambda conn: None)
            assert raw.write_ahead(client, [('PING',)]) is None
            assert raw.reply_now(conn) is raw.NOT_YET
        else:
            written = raw.write_ahead(client, [('BLPOP', 'list', 10)])
            assert written is conn
            await asyncio.sleep(0.05)
            assert raw.reply_now(conn) is raw.NOT_YET  # Redis holds it
            server.client().lpush('list', 'v')
            assert await _until_reply(conn) == [b'list', b'v']
            server.client().set('string', 'x')
            raw.write_ahead(client, [('LPUSH', 'string', 'v'), ('PING',)])
            error = await _until_reply(conn)
            assert isinstance(error, redis.ResponseError)
            assert 'WRONGTYPE' in str(error)
            assert await _until_reply(conn) == b'PONG'
            assert raw.reply_now(conn) is raw.NOT_YET
        assert await arun(raw.command(client, 'ECHO', 'x')) == b'x'
        await client.aclose()
    _run(main, loop)


@pytest.mark.parametrize('loop', LOOPS)
def test_written_ahead_on_a_killed_connection_replies_raise(server, loop):
    """The connection written ahead on is killed: no reply comes,
    ``replies`` raises and the connection is not kept; one lost already
    is not written on."""
    async def main():
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=5)
        conn = await arun(raw.kept(client))
        raw.write_ahead(client, [('BLPOP', 'list', 10)])
        server.client().client_kill_filter(_type='normal', skipme=True)
        for _ in range(20):  # the close comes: it is not a reply
            assert raw.reply_now(conn) is raw.NOT_YET
            await asyncio.sleep(0.005)
        assert raw.write_ahead(client, [('PING',)]) is None  # closing
        with pytest.raises(redis.exceptions.ConnectionError):
            await arun(raw.replies(client, conn, 1))
        assert getattr(client, raw._KEPT) is None
        assert raw.write_ahead(client, [('PING',)]) is None  # none kept
        await client.aclose()
    _run(main, loop)
