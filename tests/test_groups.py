"""A reader with a server's uid reads through a consumer group of its own,
several reads in flight (:mod:`socketio_streams.groups`): against a real
Redis, in the sync and the asyncio world; killed connections, a group
destroyed from outside, an ACL without the group commands, groups of
servers gone."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

import pytest
import redis

from socketio_streams import groups, raw
from socketio_streams.connection import Connector
from socketio_streams.options import Options
from socketio_streams.reader import StreamReader
from socketio_streams.runtime import AsyncRuntime, Runtime
from socketio_streams.stats import Stats
from socketio_streams.steps import arun, run

from .test_publisher_steps import STANDALONE

pytestmark = STANDALONE

LOG = logging.getLogger('socketio_streams.test_groups')
KEY = 'socket.io'


def _wait(predicate: Callable[[], Any], what: str,
          timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.01)


def _calls(client: Any, command: str) -> int:
    stats = client.info('commandstats').get(f'cmdstat_{command}', {})
    return int(stats.get('calls', 0))


def _groups(client: Any) -> list[str]:
    return sorted(g['name'].decode() for g in client.xinfo_groups(KEY))


class Sync:
    """A reader driven by threads."""

    def reader(self, url: str, seen: list, uid: str = 'a',
               hold: Callable[[int], Any] = bool,
               **options: Any) -> StreamReader:
        def handle(key: str, entry_id: str, fields: dict) -> None:
            hold(int(fields[b'n']))
            seen.append(int(fields[b'n']))
        reader = StreamReader(KEY, Connector(url), Runtime(),
                              Options(**options), Stats(), LOG, handle,
                              uid=uid)
        run(reader.pin(5))
        reader.start()
        return reader

    def stop(self, reader: StreamReader, url: str) -> None:
        reader.stop()
        assert run(reader.join(5))
        client = redis.Redis.from_url(url)
        run(reader.forget_position(client))
        client.close()


@pytest.fixture
def world() -> Sync:
    return Sync()


def _written(client: Any, numbers: range) -> None:
    for n in numbers:
        client.xadd(KEY, {'n': n})


def test_a_server_s_reader_reads_through_its_group_in_order_once(
        redis_server, world):
    """Entries written while it reads, three per reply: each arrives once,
    in order, by XREADGROUP (no XREAD); its group is gone once it
    stopped."""
    client = redis_server.client()
    client.xadd(KEY, {'n': -1})
    seen: list = []
    before = _calls(client, 'xread')
    reader = world.reader(redis_server.url, seen, read_count=3)
    try:
        for start in range(0, 300, 50):
            _written(client, range(start, start + 50))
        _wait(lambda: len(seen) >= 300, 'every entry')
        assert _groups(client) == [groups.PREFIX + 'a']
    finally:
        world.stop(reader, redis_server.url)
    assert seen == list(range(300))
    assert _calls(client, 'xreadgroup') >= 100
    assert _calls(client, 'xread') == before
    assert _groups(client) == []


def test_killed_connections_lose_and_repeat_nothing(redis_server, world):
    """Its connection killed again and again with reads in flight: set up
    again at the last entry read each time."""
    client = redis_server.client()
    client.xadd(KEY, {'n': -1})
    seen: list = []
    reader = world.reader(redis_server.url, seen, read_count=5)
    try:
        for start in range(0, 200, 20):
            _written(client, range(start, start + 20))
            client.client_kill_filter(_type='normal', skipme=True)
        _wait(lambda: len(seen) >= 200, 'every entry')
        assert reader._stats.snapshot()['reconnects'] >= 1
    finally:
        world.stop(reader, redis_server.url)
    assert seen == list(range(200))


def test_the_group_is_set_to_where_the_reader_was_when_it_reconnects(
        redis_server, world):
    """The handler holds the reader; its connection is killed; entries
    written meanwhile are taken from its group by another consumer (as
    reads in flight on a lost connection would be). Released, the reader
    sets the group to the last entry it read and reads them all."""
    client = redis_server.client()
    client.xadd(KEY, {'n': -1})
    seen: list = []
    held = threading.Event()
    reader = world.reader(redis_server.url, seen,
                          hold=lambda n: n == 5 and held.wait(10))
    try:
        _written(client, range(6))
        _wait(lambda: len(seen) == 5, 'the reader held')
        client.client_kill_filter(_type='normal', skipme=True)
        _written(client, range(6, 12))
        taken = client.xreadgroup(groups.PREFIX + 'a', 'thief', {KEY: '>'},
                                  noack=True)
        assert len(taken[0][1]) == 6
        held.set()
        _written(client, range(12, 20))
        _wait(lambda: len(seen) >= 20, 'every entry')
    finally:
        held.set()
        world.stop(reader, redis_server.url)
    assert seen == list(range(20))


def test_back_at_a_stream_s_start_the_reads_in_flight_are_dropped(
        redis_server):
    """``last_id`` set back to 0-0 (a stream that restarted) while reads
    are in flight: they go with their connection, so the reader's XREAD
    on it gets its own reply, not theirs."""
    client = redis_server.client(socket_timeout=5)
    client.xadd(KEY, {'n': 0})
    group = groups.Group(KEY, 'x', LOG)
    last = client.xinfo_stream(KEY)['last-generated-id'].decode()
    assert raw.entries(run(group.read(client, last, 10, 100))) == []
    assert group.reading
    assert run(group.read(client, '0-0', 10, 100)) is groups.NOT_USED
    assert not group.reading
    reply = run(raw.command(client, 'XREAD', 'COUNT', 10, 'STREAMS', KEY,
                            '0-0'))
    assert len(raw.entries(reply)) == 1


def test_a_backlog_comes_count_max_entries_a_reply_at_most(
        redis_server, world, monkeypatch):
    """``read_count=1000``, 600 entries waiting: in replies of
    ``COUNT_MAX`` entries at most (what Redis holds for the reader is
    bounded), in order, once."""
    sizes: list = []
    real = raw.reply

    def spy(client: Any) -> Any:
        reply = yield from real(client)
        sizes.append(len(raw.entries(reply)))
        return reply
    monkeypatch.setattr(raw, 'reply', spy)
    client = redis_server.client()
    client.xadd(KEY, {'n': -1})
    seen: list = []
    held = threading.Event()
    reader = world.reader(redis_server.url, seen, read_count=1000,
                          hold=lambda n: n == 0 and held.wait(10))
    try:
        _written(client, range(600))
        held.set()
        _wait(lambda: len(seen) >= 600, 'every entry')
    finally:
        held.set()
        world.stop(reader, redis_server.url)
    assert seen == list(range(600))
    assert max(sizes) == groups.COUNT_MAX


def test_a_group_destroyed_from_outside_is_made_again(redis_server, world,
                                                      caplog):
    """Destroyed under its blocked reads (as a sweep would): told
    NOGROUP, it makes the group again where it was, quietly (not a
    failure); nothing lost."""
    client = redis_server.client()
    client.xadd(KEY, {'n': -1})
    seen: list = []
    reader = world.reader(redis_server.url, seen)
    try:
        for start in range(0, 30, 10):
            _written(client, range(start, start + 10))
            _wait(lambda: len(seen) >= start + 10, 'those ten')
            assert client.xgroup_destroy(KEY, groups.PREFIX + 'a')
            _wait(lambda: _groups(client), 'the group made again')
        _written(client, range(30, 40))
        _wait(lambda: len(seen) >= 40, 'the last ten')
    finally:
        world.stop(reader, redis_server.url)
    assert seen == list(range(40))
    assert [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING] == []


def test_without_the_group_commands_it_reads_with_xread(
        redis_server, world, caplog):
    """An ACL user with XREAD but no XGROUP/XREADGROUP (this README's
    rule before this version): said once, and read as before."""
    client = redis_server.client()
    client.xadd(KEY, {'n': -1})
    client.execute_command('ACL', 'SETUSER', 'nogroups', 'reset', 'on',
                           '>pw', '~*', '+@all', '-xgroup', '-xreadgroup')
    url = redis_server.url.replace('://', '://nogroups:pw@', 1)
    seen: list = []
    try:
        with caplog.at_level(logging.INFO, logger=LOG.name):
            reader = world.reader(url, seen, read_count=3)
            try:
                _written(client, range(50))
                _wait(lambda: len(seen) >= 50, 'every entry')
            finally:
                world.stop(reader, url)
    finally:
        client.execute_command('ACL', 'DELUSER', 'nogroups')
    assert seen == list(range(50))
    said = [r.getMessage() for r in caplog.records
            if 'consumer group' in r.getMessage()]
    assert len(said) == 1 and 'XREAD' in said[0]
    assert _groups(client) == []


def test_groups_of_servers_gone_are_destroyed_live_ones_kept(
        redis_server, world, monkeypatch):
    """A group of ours left behind the stream's last entry by more than
    FORGET (by the IDs' times) goes when a reader sets its own up; a live
    reader's (it reads each entry), one set ahead of the stream (a reader
    pinned by the clock) and groups that are not ours stay."""
    monkeypatch.setattr(groups, 'FORGET', 0.5)
    client = redis_server.client()
    client.xadd(KEY, {'n': -1})
    client.xgroup_create(KEY, groups.PREFIX + 'gone', id='$')
    client.xgroup_create(KEY, 'theirs', id='0')
    client.xgroup_create(KEY, groups.PREFIX + 'ahead',
                         id=f'{int(time.time() * 1000) + 3_600_000}-0')
    seen: list = []
    live = world.reader(redis_server.url, seen, uid='live')
    try:
        _wait(lambda: groups.PREFIX + 'live' in _groups(client), 'live')
        time.sleep(0.6)  # then an entry: 'gone' is 0.6 s behind it
        client.xadd(KEY, {'n': 0})
        _wait(lambda: seen == [0], 'the entry read by the live reader')
        reader = world.reader(redis_server.url, seen, uid='new')
        try:
            _wait(lambda: groups.PREFIX + 'new' in _groups(client), 'new')
            # its sweep follows (it made its own group first)
            _wait(lambda: groups.PREFIX + 'gone' not in _groups(client),
                  'the group of a server gone destroyed')
            assert _groups(client) == sorted(
                groups.PREFIX + name for name in ('ahead', 'live', 'new')
            ) + ['theirs']
        finally:
            world.stop(reader, redis_server.url)
    finally:
        world.stop(live, redis_server.url)
    assert _groups(client) == [groups.PREFIX + 'ahead', 'theirs']


def test_asyncio_reads_through_the_group_too(redis_server):
    """The same steps on redis.asyncio: in order, once, killed twice."""
    async def main() -> list:
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        await admin.xadd(KEY, {'n': -1})
        seen: list = []

        def handle(key: str, entry_id: str, fields: dict) -> None:
            seen.append(int(fields[b'n']))
        reader = StreamReader(KEY, Connector(redis_server.url, asyncio=True),
                              AsyncRuntime(), Options(read_count=3),
                              Stats(), LOG, handle, uid='a')
        await arun(reader.pin(5))
        reader.start()
        for start in range(0, 90, 30):
            for n in range(start, start + 30):
                await admin.xadd(KEY, {'n': n})
            await admin.client_kill_filter(_type='normal', skipme=True)
        while len(seen) < 90:
            await asyncio.sleep(0.01)
        calls = (await admin.info('commandstats'))['cmdstat_xreadgroup']
        assert calls['calls'] >= 30
        reader.stop()
        assert await arun(reader.join(5))
        await arun(reader.forget_position(admin))
        assert await admin.xinfo_groups(KEY) == []
        await admin.aclose()
        return seen
    assert asyncio.run(asyncio.wait_for(main(), 30)) == list(range(90))


@pytest.mark.parametrize('reply, found', [
    (None, []),
    ([[b'k', [[b'1-0', [b'n', b'1']]]]], [[b'1-0', [b'n', b'1']]]),  # RESP2
    ({b'k': [[[b'1-0', [b'n', b'1']]]]}, [[b'1-0', [b'n', b'1']]]),  # RESP3
    ({b'k': [[b'1-0', [b'n', b'1']], [b'2-0', [b'n', b'2']]]},
     [[b'1-0', [b'n', b'1']], [b'2-0', [b'n', b'2']]]),
    ([[b'k', None]], []),
])
def test_the_entries_of_a_read_reply(reply, found):
    assert raw.entries(reply) == found


@pytest.mark.parametrize('error, is_refusal', [
    (redis.exceptions.NoPermissionError("no permissions to run 'xgroup'"),
     True),
    (redis.exceptions.ResponseError("NOPERM User x has no permissions"),
     True),
    (redis.exceptions.ResponseError("ERR unknown command 'XREADGROUP'"),
     True),
    (redis.exceptions.ResponseError('NOGROUP No such key'), False),
    (redis.exceptions.ResponseError('ERR The XGROUP subcommand requires '
                                    'the key to exist'), False),
])
def test_what_counts_as_refused(error, is_refusal):
    assert groups.refused(error) is is_refusal
