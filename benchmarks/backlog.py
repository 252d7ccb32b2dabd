"""Can one server's reader keep up with a burst written by another
manager in the same process (the GIL shared, as a server's own reader
with its emitting threads)? Counts per ``read_count``.

    python -m benchmarks.backlog [--emits N] [--read-count 100 1000 ...]

Prints, for each read_count: entries delivered to the one local socket,
those reported as trimmed unread (``gaps``), the time to drain, and the
XREAD / XINFO calls Redis counted (``INFO commandstats``).
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time

import redis
import redis.utils

from socketio_streams import RedisStreamsManager
from tests.servers import RedisProcess

from .entry import PAD, server


def drain(url: str, emits: int, read_count: int, max_len: int) -> str:
    receiver = server(RedisStreamsManager(url, read_count=read_count,
                                          max_len=max_len))
    receiver.initialize()
    client = redis.Redis.from_url(url)
    client.config_resetstat()
    writer = RedisStreamsManager(url, write_only=True, max_len=max_len)
    start = time.monotonic()
    for i in range(emits):
        writer.emit('n', {'seq': i, 'pad': PAD}, to='here')
    writer.flush(120)
    stats = receiver.stats()
    while stats['delivered'] + stats['gaps'] < emits and \
            time.monotonic() - start < 120:
        time.sleep(0.01)
        stats = receiver.stats()
    took = time.monotonic() - start
    calls = {k.split('_', 1)[1]: v['calls']
             for k, v in client.info('commandstats').items()}
    writer.close(5)
    receiver.close(5)
    client.close()
    return (f'  read_count {read_count:6}: delivered {stats["delivered"]:7}'
            f', gaps {stats["gaps"]:7}, {took:5.1f} s; XREAD '
            f'{calls.get("xread", 0):5}, XINFO '
            f'{calls.get("xinfo|stream", calls.get("xinfo", 0)):4}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--emits', type=int, default=20_000)
    parser.add_argument('--max-len', type=int, default=10_000)
    parser.add_argument('--read-count', type=int, nargs='+',
                        default=[100, 1000])
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    redis_server = RedisProcess(tempfile.mkdtemp()).start()
    try:
        print(f'{args.emits} emits, max_len {args.max_len}, '
              f'{redis_server.kind}-server, hiredis '
              f'{redis.utils.HIREDIS_AVAILABLE}')
        for read_count in args.read_count:
            print(drain(redis_server.url, args.emits, read_count,
                        args.max_len))
    finally:
        redis_server.stop()


if __name__ == '__main__':
    main()
