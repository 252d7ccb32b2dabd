"""The write side: one ordered queue, drained in pipelined batches.

``put`` never touches the network. A task takes up to ``BATCH`` items from
the head of the queue, sends them in one pipeline (``XADD ... MAXLEN ~`` and
``PUBLISH``), and removes them only once Redis answered, so a connection
error leaves them in place, in order, for the next attempt.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from .backoff import Backoff
from .connection import RETRYABLE
from .exceptions import BufferFullError


#: error replies that go away by themselves: the command is retried
TRANSIENT = ('OOM', 'LOADING', 'READONLY', 'MASTERDOWN', 'TRYAGAIN',
             'CLUSTERDOWN', 'BUSY', 'NOREPLICAS')


def transient(reply: Any) -> bool:
    """True for an error reply worth retrying (out of memory, loading, a
    replica that was a master...); False for a refusal that would repeat
    (WRONGTYPE, NOPERM), which is logged, counted and dropped."""
    return isinstance(reply, Exception) and (
        isinstance(reply, RETRYABLE)
        or str(reply).split(' ', 1)[0].upper() in TRANSIENT)


@dataclass
class Item:
    """One command: ``xadd`` (target = stream), ``publish``/``spublish``
    (target = channel) or ``set`` (target = key, payload = (value, ttl in
    ms)). ``on_written`` gets the reply (for ``xadd``, the entry ID)."""
    kind: str
    target: str
    payload: Any
    on_written: Callable[[Any], None] | None = None


class Publisher:
    """Sends queued items in order; reconnects with backoff."""

    BATCH = 500

    def __init__(self, connector, runtime, options, stats, log):
        self._connector = connector
        self._runtime = runtime
        self._options = options
        self._stats = stats
        self._log = log
        self._queue: deque[Item] = deque()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._backoff = Backoff()
        self._wakeup = None
        self._done = None
        self._stopping = False
        self.connected = False
        self.failures = 0

    @property
    def buffered(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._wakeup = self._runtime.event()
        self._done = self._runtime.event()
        self._runtime.start(self._run)

    def next_seq(self) -> int:
        return next(self._seq)

    def put(self, item: Item) -> None:
        """Queue an item; ``BufferFullError`` if the buffer is full."""
        if self._stopping:
            raise RuntimeError('the manager is closed')
        with self._lock:
            if len(self._queue) >= self._options.buffer_size:
                self._stats.incr('buffer_full')
                raise BufferFullError(
                    f'{len(self._queue)} packets are waiting for Redis '
                    f'({self._connector.describe()}); buffer_size='
                    f'{self._options.buffer_size} reached')
            self._queue.append(item)
        self._wakeup.set()

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is empty; False if ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            self._runtime.sleep(0.01)
        return not self._queue

    def close(self, timeout: float) -> None:
        """Flush for up to ``timeout`` seconds, then stop the task."""
        if self._wakeup is None:
            return
        if not self.flush(timeout) and self._queue:
            self._log.error('closing with %d packets not written to Redis '
                            '(%s unreachable)', len(self._queue),
                            self._connector.describe())
        self._stopping = True
        self._wakeup.set()
        self._done.wait(timeout=1.0)

    def _take(self) -> list[Item]:
        with self._lock:
            return list(itertools.islice(self._queue, self.BATCH))

    def _run(self) -> None:
        try:
            while True:
                batch = self._take()
                if not batch:
                    if self._stopping:
                        return
                    self._wakeup.wait(timeout=1.0)
                    self._wakeup.clear()
                    continue
                if self._stopping and self.failures:
                    return  # close() gave up on an unreachable Redis
                self._send(batch)
        finally:
            self._done.set()

    def _send(self, batch: list[Item]) -> None:
        try:
            replies = self._execute(batch)
        except RETRYABLE as exc:
            self._on_failure(exc)
            return
        except Exception as exc:  # a bug or an unexpected client error
            self._log.exception('publisher: unexpected error: %r', exc)
            self._on_failure(exc)
            return
        done = next((i for i, r in enumerate(replies) if transient(r)),
                    len(batch))
        with self._lock:
            for _ in range(done):
                self._queue.popleft()
        self._deliver(batch[:done], replies[:done])
        if done < len(batch):  # the rest waits: Redis is busy, not wrong
            self._on_failure(replies[done])
            return
        if self.failures:
            self._log.warning('publisher: Redis %s is back after %d failed '
                              'attempts', self._connector.describe(),
                              self.failures)
            self.failures = 0
        self.connected = True

    def _execute(self, batch: list[Item]) -> list:
        client = self._connector.client()
        pipe = client.pipeline(transaction=False)
        for item in batch:
            if item.kind == 'xadd':
                pipe.xadd(item.target, item.payload,
                          maxlen=self._options.max_len, approximate=True)
            elif item.kind == 'set':
                value, ttl_ms = item.payload
                pipe.set(item.target, value, px=ttl_ms)
            elif item.kind == 'spublish':
                pipe.execute_command('SPUBLISH', item.target, item.payload)
            else:
                pipe.publish(item.target, item.payload)
        return pipe.execute(raise_on_error=False)

    def _deliver(self, batch: list[Item], replies: list) -> None:
        ok = 0
        for item, reply in zip(batch, replies):
            if isinstance(reply, Exception):
                self._stats.incr('errors')
                self._log.error('Redis refused %s to %r: %s (packet '
                                'dropped; the same command would be refused '
                                'again)', item.kind.upper(), item.target,
                                reply)
                continue
            ok += 1
            if item.on_written is not None:
                try:
                    item.on_written(reply)
                except Exception:
                    self._log.exception('publisher: on_written failed')
        self._stats.incr('published', ok)

    def _on_failure(self, exc: Exception) -> None:
        self.connected = False
        self.failures += 1
        if self.failures == 1:
            self._stats.incr('reconnects')
            self._log.warning('publisher: Redis %s unreachable (%r); '
                              'buffering %d packets and retrying',
                              self._connector.describe(), exc,
                              len(self._queue))
        elif self.failures % 50 == 0:
            self._log.error('publisher: Redis %s still unreachable after %d '
                            'attempts; %d packets buffered',
                            self._connector.describe(), self.failures,
                            len(self._queue))
        self._runtime.sleep(self._backoff.compute(self.failures))
