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

server = test_raw.server  # the fixture


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
    batch = [('XADD', 's', '*', 'n', str(i)) if i % 50 else
             ('XADD', 'string', '*', 'n', str(i)) for i in range(200)]

    async def main():
        client = redis.asyncio.Redis.from_url(server.url, socket_timeout=5)
        await client.set('string', 'x')
        conn = await arun(raw.kept(client))
        calls = []
        read = conn.read_response

        def spy(*args, **kwargs):
            calls.append(1)
            return read(*args, **kwargs)
        conn.read_response = spy
        ours = await arun(raw.pipeline(client, batch))
        assert 1 <= len(calls) < 20
        pipe = client.pipeline(transaction=False)
        for args in batch:
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
