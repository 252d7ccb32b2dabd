"""CPU per stream entry on a receiving server, in-process: less noisy than
the cluster figures on a shared machine.

    python -m benchmarks.entry [entries]

Prints CPU microseconds per entry (``time.thread_time``: of the handling
thread only, not the managers' own tasks) for: reading the entries with
redis-py (``XREAD`` of 100 at a time, reply parsing included; hiredis if
installed), then RedisStreamsManager handling each entry
(``Inbound.on_entry``, its steps driven) when it is delivered to one
local socket, when its room has no local socket, when its namespace has
none, and when it is the server's own entry; and
``socketio.RedisManager`` decoding and handling the same message (its
PUB/SUB JSON, without the read).
"""
from __future__ import annotations

import inspect
import json
import logging
import sys
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


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    redis_server = RedisProcess(tempfile.mkdtemp()).start()
    try:
        url = redis_server.url
        writer = RedisStreamsManager(url, write_only=True,
                                     max_len=4 * count)
        for room in ('here', 'nowhere'):
            for i in range(count):
                writer.emit('n', {'seq': i, 'pad': PAD}, to=room)
        for i in range(count):
            writer.emit('n', {'seq': i, 'pad': PAD}, namespace='/other')
        writer.close(60)
        client = redis.Redis.from_url(url)
        start = time.thread_time()
        entries = read_all(client, 'socket.io', 3 * count)
        read = (time.thread_time() - start) / len(entries) * 1e6
        delivered, elsewhere = entries[:count], entries[count:2 * count]
        receiver = server(RedisStreamsManager(url))._inbound.on_entry
        costs = {
            'delivered to 1 local socket': per_entry(receiver, delivered),
            'room without local socket': per_entry(receiver, elsewhere),
            'namespace without local socket': per_entry(
                receiver, entries[2 * count:])}
        own = server(RedisStreamsManager(url))
        own.uid = writer.uid
        costs['own entry (skipped by uid)'] = per_entry(
            own._inbound.on_entry, delivered)
        pubsub = server(socketio.RedisManager(url))
        message = json.dumps({
            'method': 'emit', 'event': 'n', 'data': [{'seq': 1, 'pad': PAD}],
            'binary': False, 'namespace': '/', 'room': 'here',
            'skip_sid': None, 'callback': None, 'host_id': 'other'})
        costs['socketio.RedisManager, delivered'] = per_entry(
            lambda m: pubsub._handle_emit(json.loads(m)),
            [(message,)] * count)
        client.close()
    finally:
        redis_server.stop()
    print(f'{count} entries each; {redis_server.kind}-server; hiredis '
          f'{redis.utils.HIREDIS_AVAILABLE}; CPU us per entry:')
    print(f'  {"XREAD 100 at a time, parsed by redis-py":40} {read:7.1f}')
    for what, cost in costs.items():
        print(f'  {what:40} {cost:7.1f}')


if __name__ == '__main__':
    main()
