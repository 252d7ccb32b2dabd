"""What each transport costs Redis at a steady rate, with raw redis-py and
no manager: the floor under the cluster benchmark's CPU of redis-server.

    python -m benchmarks.transport [--rate 2000] [--seconds 5] [--readers 3]
                                   [--runs 3]

One process publishes at ``--rate`` for ``--seconds``; ``--readers``
processes (one per server of a cluster) each get every message:

- ``PUBLISH``: each reader subscribed to one channel (what
  ``socketio.RedisManager`` does);
- ``XADD`` + ``XREADGROUP``: each reader with a consumer group of its own
  (``NOACK``) and 16 reads in flight (what ``RedisStreamsManager`` does);
- ``XADD`` + ``XREAD``: each reader sending its next ``XREAD BLOCK`` once
  the last one answered (the Node adapter's way).

Printed, medians of ``--runs`` (the transports in turn in each run):
redis-server's CPU per message from /proc (user + system), and its own
account of the time spent inside each command (``INFO commandstats``,
microseconds per call), against ``PUBLISH``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from typing import Any

import redis

from socketio_streams import raw
from tests.servers import RedisProcess

from .cluster import cpu_seconds

TRANSPORTS = ('PUBLISH', 'XADD + XREADGROUP', 'XADD + XREAD')
#: an emit's entry, as RedisStreamsManager writes it (100 bytes of pad)
FIELDS = ['uid', 'abcdefghijklmnop', 'nsp', '/', 'type', '3',
          'data', '[2,"n",{"seq":1234,"pad":"' + 'x' * 100 + '"}]']
DEPTH = 16


def reader(url: str, transport: str, index: int, count: int,
           ready: Any) -> None:
    """Read ``count`` messages by ``transport``."""
    client = redis.Redis.from_url(url)
    got = 0
    if transport == 'PUBLISH':
        pubsub = client.pubsub()
        pubsub.subscribe('c')
        ready.put(index)
        for message in pubsub.listen():
            got += message['type'] == 'message'
            if got == count:
                return
    conn = client.connection_pool.get_connection()
    if transport == 'XADD + XREAD':
        last = client.xinfo_stream('s')['last-generated-id']
        ready.put(index)
        while got < count:
            conn.send_command('XREAD', 'BLOCK', 5000, 'STREAMS', 's', last)
            entries = raw.entries(conn.read_response())
            if entries:
                got += len(entries)
                last = entries[-1][0]
        return
    group = f'g{index}'
    client.xgroup_create('s', group, '$')
    read = ('XREADGROUP', 'GROUP', group, 'r', 'COUNT', 128, 'BLOCK', 5000,
            'NOACK', 'STREAMS', 's', '>')
    conn.send_packed_command(conn.pack_commands([read] * DEPTH))
    flying = DEPTH
    ready.put(index)
    while got < count:
        got += len(raw.entries(conn.read_response()))
        flying -= 1
        if flying <= DEPTH // 2:
            conn.send_packed_command(
                conn.pack_commands([read] * (DEPTH - flying)))
            flying = DEPTH


def measure(server: RedisProcess, transport: str, args) -> dict:
    """Redis' CPU and its time per command, per message sent."""
    client = server.client()
    client.flushall()
    client.xadd('s', {'start': 1})
    count = int(args.rate * args.seconds)
    ready: Any = multiprocessing.Queue()
    readers = [multiprocessing.Process(
        target=reader, args=(server.url, transport, i, count, ready))
        for i in range(args.readers)]
    for process in readers:
        process.start()
    for _ in readers:
        ready.get(timeout=30)
    time.sleep(0.3)  # the last SUBSCRIBE or read reaches Redis
    client.config_resetstat()
    assert server.proc is not None
    before = cpu_seconds(server.proc.pid)
    start = time.monotonic()
    for i in range(count):
        delay = start + i / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if transport == 'PUBLISH':
            client.publish('c', FIELDS[-1])
        else:
            client.execute_command('XADD', 's', 'MAXLEN', '~', 10_000, '*',
                                   *FIELDS)
    for process in readers:
        process.join(60)
        if process.exitcode != 0:
            raise RuntimeError(f'{transport}: a reader did not get them all')
    cpu = cpu_seconds(server.proc.pid) - before
    stats = client.info('commandstats')
    per_call = {name[len('cmdstat_'):]: stat['usec_per_call']
                for name, stat in stats.items()
                if stat['calls'] >= count // 2}
    inside = sum(stat['usec'] for stat in stats.values())
    return {'cpu_us': cpu / count * 1e6, 'inside_us': inside / count,
            **per_call}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rate', type=int, default=2000)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--readers', type=int, default=3)
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args()
    server = RedisProcess(tempfile.mkdtemp()).start()
    try:
        results: dict = {transport: [] for transport in TRANSPORTS}
        for _ in range(args.runs):
            for transport in TRANSPORTS:
                results[transport].append(measure(server, transport, args))
        print(f'{server.kind}-server, {args.readers} readers, {args.rate}/s '
              f'for {args.seconds:g} s, medians of {args.runs}')
        print('| transport | redis-server CPU, us per message | inside '
              'commands, us per message | us per call |')
        print('| --- | --- | --- | --- |')
        base = statistics.median(r['cpu_us'] for r in results['PUBLISH'])
        for transport, runs in results.items():
            cpu = statistics.median(r['cpu_us'] for r in runs)
            inside = statistics.median(r['inside_us'] for r in runs)
            calls = ', '.join(
                f'{name} {statistics.median(r[name] for r in runs):.2f}'
                for name in runs[0] if name not in ('cpu_us', 'inside_us'))
            print(f'| {transport} | {cpu:.1f} ({cpu / base:.2f}x) | '
                  f'{inside:.1f} | {calls} |')
    finally:
        server.stop()


if __name__ == '__main__':
    main()
