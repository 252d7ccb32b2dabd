"""Emit cost and end-to-end throughput: RedisStreamsManager against
socketio.RedisManager and raw redis-py (XADD + XREAD), in one run.

    python -m benchmarks.throughput [packets]

Prints, for each: seconds spent inside emit() (what the caller waits for)
and seconds until a client on another server has every packet, with ratios
to socketio.RedisManager.
"""
from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time

import redis

from tests.nodes import wait_until
from tests.servers import RedisProcess

from .harness import MANAGERS, Server


def via_servers(kind: str, url: str, count: int) -> tuple[float, float]:
    sender, receiver = Server(kind, url), Server(kind, url)
    client = receiver.client()
    sender.client().disconnect()  # initializes the sender's manager
    time.sleep(0.5)
    start = time.perf_counter()
    for i in range(count):
        sender.sio.emit('n', {'i': i, 'pad': 'x' * 100})
    emitted = time.perf_counter() - start
    wait_until(lambda: len(client.events('n')) >= count, 120, 'all packets')
    total = time.perf_counter() - start
    client.disconnect()
    sender.stop()
    receiver.stop()
    return emitted, total


def raw_redis(url: str, count: int) -> tuple[float, float]:
    """The floor: one pipeline of XADDs, one XREAD loop, no Socket.IO."""
    writer, reader = redis.Redis.from_url(url), redis.Redis.from_url(url)
    got = []
    last = '$'

    def read():
        nonlocal last
        while len(got) < count:
            for _key, entries in reader.xread({'raw': last}, count=100,
                                              block=1000) or ():
                for entry_id, fields in entries:
                    last = entry_id
                    got.append(fields)

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.2)
    start = time.perf_counter()
    pipe = writer.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd('raw', {'data': '{"i": %d, "pad": "%s"}' % (i, 'x' * 100)},
                  maxlen=10_000, approximate=True)
        if len(pipe) >= 500:
            pipe.execute()
    pipe.execute()
    emitted = time.perf_counter() - start
    thread.join()
    return emitted, time.perf_counter() - start


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    server = RedisProcess(tempfile.mkdtemp()).start()
    try:
        results = {kind: via_servers(kind, server.url, count)
                   for kind in MANAGERS}
        results['raw redis-py'] = raw_redis(server.url, count)
    finally:
        server.stop()
    base_emit, base_total = results['socketio.RedisManager']
    print(f'{count} packets, {server.kind}-server, one machine')
    print(f'{"":24} {"in emit()":>12} {"ratio":>7} {"delivered":>12} '
          f'{"ratio":>7} {"packets/s":>10}')
    for kind, (emitted, total) in results.items():
        print(f'{kind:24} {emitted:11.3f}s {emitted / base_emit:7.2f} '
              f'{total:11.3f}s {total / base_total:7.2f} '
              f'{count / total:10.0f}')


if __name__ == '__main__':
    main()
