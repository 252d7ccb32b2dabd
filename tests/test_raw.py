"""socketio_streams.raw: commands on a kept connection, replies read raw,
against redis-py's own pipeline on a real server."""
from __future__ import annotations

import os
from typing import Any

import pytest
import redis
from redis.connection import Connection, PythonRespSerializer

from socketio_streams import raw
from socketio_streams.steps import run

from .servers import RedisProcess


@pytest.fixture
def server(tmp_path):
    """A private server of the standalone kind in every env: what is
    tested is redis-py's connection, the same on every deployment (also
    for tests/test_raw_asyncio.py)."""
    server = RedisProcess(str(tmp_path / 'redis')).start()
    yield server
    server.stop()


COMMANDS = [
    ('XADD', 'k', 'MAXLEN', '~', 10000, '*', 'uid', 'u', 'data',
     '{"x":"é\u2028日本"}', 'seq', '12'),
    ('SET', 'a', 'v', 'PX', 5000),
    ('PUBLISH', 'c', b'\x00\xff\r\n'),
    ('SET', 'f', 1.5),
]


def test_pack_writes_what_redis_py_writes():
    conn = Connection()
    ours = b''.join(raw.pack(conn, COMMANDS))
    assert ours == b''.join(conn.pack_commands(COMMANDS))
    python = PythonRespSerializer(conn._buffer_cutoff, conn.encoder.encode)
    assert ours == b''.join(b''.join(python.pack(*c)) for c in COMMANDS)


def test_pack_leaves_other_encodings_and_bad_arguments_to_the_client():
    latin = Connection(encoding='latin-1')
    assert raw.pack(latin, [('SET', 'k', 'é')]) == \
        latin.pack_commands([('SET', 'k', 'é')])
    with pytest.raises(redis.exceptions.DataError):  # redis-py's refusal
        raw.pack(Connection(), [('SET', 'k', True)])
    with pytest.raises(UnicodeError):
        raw.pack(Connection(), [('SET', 'k', '\ud800')])


def test_an_error_reply_takes_its_place_as_in_redis_py(server):
    client = server.client()
    client.set('string', 'x')
    batch = [('XADD', 's', '*', 'n', '1'), ('XADD', 'string', '*', 'n', '2'),
             ('XADD', 's', '*', 'n', '3')]
    ours = run(raw.pipeline(client, batch))
    pipe = client.pipeline(transaction=False)
    for args in batch:
        pipe.execute_command(*args)
    theirs = pipe.execute(raise_on_error=False)
    assert [type(r) for r in ours] == [type(r) for r in theirs] == \
        [bytes, redis.exceptions.ResponseError, bytes]
    assert 'WRONGTYPE' in str(ours[1])
    assert [f[b'n'] for _, f in client.xrange('s')] == \
        [b'1', b'3', b'1', b'3']
    # the kept connection is still in step
    assert run(raw.command(client, 'PING')) == b'PONG'
    assert run(raw.command(client, 'ECHO', 'still')) == b'still'


#: 200 entries, 4 of them to a key that is not a stream (error replies)
BATCH = [('XADD', 's', '*', 'n', str(i)) if i % 50 else
         ('XADD', 'string', '*', 'n', str(i)) for i in range(200)]


def counted_reads(conn: Any) -> list:
    """Count the calls to ``conn.read_response`` (sync or asyncio)."""
    calls: list = []
    read = conn.read_response

    def spy(*args, **kwargs):
        calls.append(1)
        return read(*args, **kwargs)
    conn.read_response = spy
    return calls


def test_a_pipelines_replies_held_already_are_taken_as_they_are(server):
    """The sync twin of tests/test_raw_asyncio.py's: after the first
    reply, those the hiredis parser holds already are taken from it, not
    through redis-py's ``read_response`` each (0.6 us a command less in
    the publisher's pipelines), error replies in their place."""
    client = server.client()
    client.set('string', 'x')
    calls = counted_reads(run(raw.kept(client)))
    ours = run(raw.pipeline(client, BATCH))
    assert 1 <= len(calls) < 20
    pipe = client.pipeline(transaction=False)
    for args in BATCH:
        pipe.execute_command(*args)
    theirs = pipe.execute(raise_on_error=False)
    assert [type(r) for r in ours] == [type(r) for r in theirs]
    assert sum(isinstance(r, redis.exceptions.ResponseError)
               for r in ours) == 4
    assert run(raw.command(client, 'ECHO', 'in step')) == b'in step'


def test_a_lost_connection_raises_and_is_not_kept(server):
    client = server.client()
    first = run(raw.kept(client))
    run(raw.command(client, 'CLIENT', 'SETNAME', 'kept'))
    admin = server.client()
    admin.client_kill_filter(_type='normal', skipme=True)
    with pytest.raises(redis.exceptions.ConnectionError):
        run(raw.command(client, 'ECHO', 'x'))
    pool = client.connection_pool
    assert first not in pool._in_use_connections  # back in the pool
    assert run(raw.command(client, 'ECHO', 'again')) == b'again'
    with pytest.raises(redis.exceptions.ResponseError):
        run(raw.command(client, 'NOSUCHCOMMAND'))
    assert run(raw.command(client, 'ECHO', 'after')) == b'after'


def test_a_command_that_cannot_be_packed_sends_nothing(server):
    client = server.client()
    before = run(raw.command(client, 'CLIENT', 'ID'))
    with pytest.raises(UnicodeError):
        run(raw.pipeline(client, [('SET', 'a', 'ok'),
                                  ('SET', 'b', '\ud800')]))
    assert client.get('a') is None
    # the same connection, never dropped
    assert run(raw.command(client, 'CLIENT', 'ID')) == before


@pytest.fixture(params=['hiredis, one read', 'redis-py can_read'])
def reply_now_way(request, monkeypatch):
    """``reply_now`` both ways: one read of the descriptor (hiredis, a
    plain socket with a timeout), and redis-py's ``can_read`` (any other
    parser or socket); the reads of the first way, counted."""
    reads: list = []
    if request.param == 'hiredis, one read':
        real = os.readv
        monkeypatch.setattr(os, 'readv', lambda *a: reads.append(a) or
                            real(*a))
    else:
        monkeypatch.setattr(raw, '_gets', lambda conn: None)
    yield request.param
    assert bool(reads) is (request.param == 'hiredis, one read')


def test_reply_now_gives_a_reply_once_it_has_come(server, reply_now_way):
    """Not yet while Redis holds it (BLPOP), then the reply; an error
    reply in its place; nothing read twice."""
    client = server.client(socket_timeout=5)
    run(raw.kept(client))
    conn = raw.write_ahead(client, [('BLPOP', 'list', 10)])
    assert raw.reply_now(conn) is raw.NOT_YET
    server.client().lpush('list', 'v')
    while (reply := raw.reply_now(conn)) is raw.NOT_YET:
        pass
    assert reply == [b'list', b'v']
    server.client().set('string', 'x')
    conn = raw.write_ahead(client, [('LPUSH', 'string', 'v'), ('PING',)])
    while (reply := raw.reply_now(conn)) is raw.NOT_YET:
        pass
    assert isinstance(reply, redis.ResponseError) and 'WRONGTYPE' in \
        str(reply)
    while (reply := raw.reply_now(conn)) is raw.NOT_YET:
        pass
    assert reply in (b'PONG', 'PONG', True)
    assert raw.reply_now(conn) is raw.NOT_YET
    assert run(raw.command(client, 'PING')) in (b'PONG', 'PONG', True)


def test_reply_now_on_a_killed_connection_leaves_the_failure_to_replies(
        server, reply_now_way):
    client = server.client(socket_timeout=5)
    run(raw.kept(client))
    conn = raw.write_ahead(client, [('BLPOP', 'list', 10)])
    server.client().client_kill_filter(_type='normal', skipme=True)
    for _ in range(1000):  # the close comes, it is not a reply
        assert raw.reply_now(conn) is raw.NOT_YET
    with pytest.raises(redis.ConnectionError):
        run(raw.replies(client, conn, 1))
    assert getattr(client, raw._KEPT) is None
