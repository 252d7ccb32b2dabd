"""CPU per stream entry on a receiving server, in-process: less noisy than
the cluster figures on a shared machine.

    python -m benchmarks.entry [entries] [--repeat N]

Prints CPU microseconds per entry (``time.thread_time``: of the handling
thread only, not the managers' own tasks) for: reading the entries with
redis-py (``XREAD`` of 100 at a time, reply parsing included; hiredis if
installed), then RedisStreamsManager handling each entry
(``Inbound.on_entry``, its steps driven) when it is delivered to one
local socket (in its room; and a broadcast to everyone), when its room
has no local socket, when its namespace has none, and when it is the
server's own entry (which the reader skips before ``on_entry``); and
``socketio.RedisManager`` decoding and handling the same message (its
PUB/SUB JSON, without the read).
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import tempfile
import time

import redis
import redis.utils
import socketio

from socketio_streams import RedisStreamsManager
from socketio_streams.steps import run
from tests.servers import RedisProcess

PAD = 'x' * 100


def per_entry(func, items) -> float:
    """CPU us per call of ``func`` (its steps driven, as a reader's)."""
    start = time.thread_time()
    for item in items:
        result = func(*item)
        if inspect.isgenerator(result):
            run(result)
    return (time.thread_time() - start) / len(items) * 1e6


def server(manager):
    sio = socketio.Server(client_manager=manager, async_mode='threading')
    sio._send_eio_packet = lambda eio_sid, pkt: None
    sid = manager.connect('eio1', '/')
    manager.enter_room(sid, '/', 'here')
    return manager


def read_all(client: redis.Redis, key: str, count: int) -> list:
    """``(key, entry_id, fields)`` of the stream, 100 per XREAD."""
    entries, last = [], '0'
    while len(entries) < count:
        reply = client.xread({key: last}, count=100)
        if isinstance(reply, dict):  # RESP3
            reply = list(reply.items())
        for _key, batch in reply:
            for entry_id, fields in batch:
                entries.append((key, entry_id.decode(), fields))
                last = entry_id
    return entries


def measure(url: str, entries: list, count: int, uid: str) -> dict:
    """One pass of every figure, on fresh managers (no entry seen yet)."""
    client = redis.Redis.from_url(url)
    start = time.thread_time()
    read_all(client, 'socket.io', 4 * count)
    costs = {'XREAD 100 at a time, parsed by redis-py':
             (time.thread_time() - start) / (4 * count) * 1e6}
    client.close()
    receiver, own = (server(RedisStreamsManager(url)) for _ in range(2))
    own.uid = uid
    for what, handle, items in (
            ('delivered to 1 local socket', receiver, entries[:count]),
            ('room without local socket', receiver,
             entries[count:2 * count]),
            ('namespace without local socket', receiver,
             entries[2 * count:3 * count]),
            ('delivered, a broadcast to everyone', receiver,
             entries[3 * count:]),
            ('own entry (skipped by uid)', own, entries[:count])):
        costs[what] = per_entry(handle._inbound.on_entry, items)
    pubsub = server(socketio.RedisManager(url))
    message = json.dumps({
        'method': 'emit', 'event': 'n', 'data': [{'seq': 1, 'pad': PAD}],
        'binary': False, 'namespace': '/', 'room': 'here',
        'skip_sid': None, 'callback': None, 'host_id': 'other'})
    costs['socketio.RedisManager, delivered'] = per_entry(
        lambda m: pubsub._handle_emit(json.loads(m)), [(message,)] * count)
    receiver.close(1)
    own.close(1)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('entries', type=int, nargs='?', default=20_000)
    parser.add_argument('--repeat', type=int, default=5,
                        help='passes; the least CPU of each is printed')
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    count = args.entries
    redis_server = RedisProcess(tempfile.mkdtemp()).start()
    try:
        url = redis_server.url
        writer = RedisStreamsManager(url, write_only=True,
                                     max_len=5 * count,
                                     buffer_size=5 * count)
        for room in ('here', 'nowhere'):
            for i in range(count):
                writer.emit('n', {'seq': i, 'pad': PAD}, to=room)
        for i in range(count):
            writer.emit('n', {'seq': i, 'pad': PAD}, namespace='/other')
        for i in range(count):
            writer.emit('n', {'seq': i, 'pad': PAD})
        writer.close(60)
        client = redis.Redis.from_url(url)
        entries = read_all(client, 'socket.io', 4 * count)
        client.close()
        passes = [measure(url, entries, count, writer.uid)
                  for _ in range(args.repeat)]
    finally:
        redis_server.stop()
    costs = {what: min(p[what] for p in passes) for what in passes[0]}
    theirs = costs['socketio.RedisManager, delivered']
    print(f'{count} entries each, least of {args.repeat} passes; '
          f'{redis_server.kind}-server; hiredis '
          f'{redis.utils.HIREDIS_AVAILABLE}; CPU us per entry, and as a '
          f'ratio to socketio.RedisManager delivering:')
    for what, cost in costs.items():
        print(f'  {what:40} {cost:7.1f} {cost / theirs:6.2f}')


if __name__ == '__main__':
    main()
