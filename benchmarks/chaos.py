"""The chaos scenario of tests/test_chaos.py against socketio.RedisManager
and RedisStreamsManager, in one run: 3 servers, 2 clients each, 2 servers
emitting a numbered sequence at 100 packets/s for 10 s while every Redis
connection is killed every 250 ms and Redis restarts once.

    python -m benchmarks.chaos
"""
from __future__ import annotations

import logging
import tempfile
import time

from tests.chaos import Killer, Publisher, tally
from tests.servers import RedisProcess

from .harness import MANAGERS, Server

DURATION, INTERVAL = 10.0, 0.01


def run(kind: str) -> str:
    redis_server = RedisProcess(tempfile.mkdtemp(),
                                args=('--appendonly', 'yes')).start()
    servers = [Server(kind, redis_server.url) for _ in range(3)]
    clients = [s.client() for s in servers for _ in range(2)]
    time.sleep(0.5)  # let RedisManager's listeners subscribe
    killer = Killer(lambda: redis_server.client(socket_timeout=2))
    publishers = [Publisher(name, lambda p, s=s: s.sio.emit('seq', list(p)),
                            DURATION, INTERVAL)
                  for name, s in zip('AB', servers)]
    killer.start()
    for p in publishers:
        p.start()
    time.sleep(DURATION / 2)
    killer.paused.set()
    redis_server.restart()
    killer.paused.clear()
    for p in publishers:
        p.join()
    killer.stop()
    time.sleep(5)  # time to catch up
    result = tally([[tuple(a[0]) for a in c.events('seq')] for c in clients],
                   {p.name_: p.sent for p in publishers})
    for c in clients:
        c.disconnect()
    for s in servers:
        s.stop()
    redis_server.stop()
    errors = sum(len(p.errors) for p in publishers)
    return (f'{kind:24} {result.line()}; emit errors {errors}; '
            f'{killer.kills} connections killed')


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    for kind in MANAGERS:
        print(run(kind), flush=True)


if __name__ == '__main__':
    main()
