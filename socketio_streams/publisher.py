"""The write side: one ordered queue, drained in pipelined batches.

``put`` queues (one that finds the task idle writes its command itself:
:mod:`.write_ahead`). A task takes up to ``BATCH`` items from
the head of the queue (on a cluster: those bound for one node), sends them
in one pipeline (``XADD ... MAXLEN ~``, ``PUBLISH``...), and removes them
only once Redis answered, so a connection error leaves them in place, in
order, for the next attempt.

A server can acknowledge an entry and then lose it: a master dies before
its replica got the entry and the replica is promoted (Sentinel, Redis
Cluster), or Redis restarts without persistence. So the publisher keeps
the entries written in the last ``RECENT_SECONDS``; after any failure, and
before it writes anything else, it asks the server for them and puts those
that are missing back at the head of the queue, in order. Readers drop the
copies of entries they had already read (same sender, same ``seq``).

What waits or does I/O is written as :mod:`steps <socketio_streams.steps>`
(``put``, ``flush``, ``close`` and the task's own), so one class serves the
sync manager (``steps.run``) and the asyncio one (``steps.arun``).
"""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from functools import partial
from typing import Any

from . import protocol, raw
from .backoff import Backoff
from .connection import (CLUSTER_ERRORS, REFUSED_LOCALLY, RESPONSE_ERRORS,
                         RETRYABLE, TRANSIENT, Writer, explain, transient,
                         why)
from .exceptions import BufferFullError
from .items import Item, Recent, sendable
from .pressure import Unread, limit as unread_limit
from .steps import Steps
from .write_ahead import WriteAhead

__all__ = ['Item', 'Publisher', 'TRANSIENT', 'transient']

#: how long a task ended from outside, before close(), still writes what
#: is queued (as the sync manager does at the interpreter's exit)
DRAIN_WAIT = 2.0


class Publisher(WriteAhead):
    """Sends queued items in order; reconnects with backoff."""

    BATCH = 500
    #: how long ``put`` waits for room while Redis is reachable
    FULL_WAIT = 5.0

    def __init__(self, connector, runtime, options, stats, log):
        self._connector = connector
        self._runtime = runtime
        self._options = options
        self._stats = stats
        self._log = log
        self._queue: deque[Item] = deque()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._since_pause = 0
        self._paused_at = 0.0  # (monotonic)
        self._backoff = Backoff()
        self._wakeup = None
        self._done = None
        self._task = None
        self._stopping = False
        #: ``put`` drops from ``close()`` on (a warning the first time)
        self.closed = False
        self._dropped = 0
        self._last_error = ''
        self._writer = Writer(connector)
        self._recent = Recent()
        self._check_recent = False
        self.connected = False
        self.failures = 0
        #: backpressure from this server's readers (set by its links)
        self.unread: Unread | None = None
        self._init_write_ahead()

    @property
    def buffered(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the task that sends what is queued."""
        self._wakeup = self._runtime.event()
        self._done = self._runtime.event()
        self._task = self._runtime.spawn(self._run())

    @property
    def running(self) -> bool:
        """True from ``start()`` until the task has ended."""
        return self._done is not None and not self._done.is_set()

    def put(self, item: Item) -> Steps[None]:
        """Queue an item (steps). A full buffer while Redis is reachable (a
        burst faster than the pipeline) makes the caller wait for room, up
        to ``FULL_WAIT`` seconds; while Redis is unreachable, or after
        that, ``BufferFullError``: never a silent drop. With room, queued
        at the first step, without yielding (``offer``)."""
        if self.offer(item):
            self._since_pause += 1
            if self._since_pause >= self._runtime.pause_every and \
                    time.monotonic() >= self._paused_at + \
                    self._runtime.pause_gap:
                self._since_pause = 0  # a burst lets the others run
                yield self._runtime.pause
                self._paused_at = time.monotonic()
            return
        deadline = time.monotonic() + self.FULL_WAIT
        while True:
            if self.failures or not self.connected or \
                    time.monotonic() >= deadline:
                self._stats.incr('buffer_full')
                raise BufferFullError(
                    f'{len(self._queue)} packets are waiting for Redis '
                    f'({self._connector.describe()}); buffer_size='
                    f'{self._options.buffer_size} reached')
            self._wakeup.set()
            yield partial(self._runtime.sleep, 0.001)
            if self.offer(item):
                return

    def offer(self, item: Item) -> bool:
        """Queue an item if there is room: True; False if the buffer is
        full (``put`` waits for room). A stream entry gets its ``seq``
        here, under the lock, so that sequence numbers rise in queue order
        even with many emitting threads (readers drop an entry whose
        ``seq`` is not above the last they saw from its sender). Once
        ``close()`` began, the item is dropped: a warning the first time,
        then debug lines."""
        if self.closed:
            self._drop(item)
            return True
        with self._lock:
            if len(self._queue) >= self._options.buffer_size:
                return False
            if item.kind == 'xadd':
                item.payload[protocol.SEQ] = str(next(self._seq))
            self._queue.append(item)
            if self._ahead is not None:
                self._collect()
            if self._idle and self._write_ahead(item):
                return True  # its reply: read by the next put, or the task
        if not self._wakeup.is_set():  # set: the task will take it
            self._wakeup.set()
        return True

    def _drop(self, item: Item) -> None:
        log = self._log.debug if self._dropped else self._log.warning
        self._dropped += 1
        log('publisher: closed; %s to %r not sent to Redis %s (nothing '
            'is, after close())', item.kind.upper(), item.target,
            self._connector.describe())

    def flush(self, timeout: float) -> Steps[bool]:
        """Wait until everything queued is written and its ``on_written``
        has run (an item leaves the queue after that); False if
        ``timeout`` passed first (steps)."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            if self.hurry():  # its reply is to read
                self._wakeup.set()
            yield partial(self._runtime.sleep, 0.01)
        return not self._queue

    def close(self, timeout: float) -> Steps[None]:
        """Take no more items; flush, then stop the task, all within
        ``timeout`` seconds (at least a moment to end it); steps. What is
        left is logged with the reason: Redis unreachable, or still
        sending. An asyncio task still running then is cancelled."""
        self.closed = True
        if self._wakeup is None:
            return
        deadline = time.monotonic() + timeout
        if not (yield from self.flush(timeout)):
            self._log.error('closing with %d packets not written to Redis '
                            '%s: %s', len(self._queue),
                            self._connector.describe(), self._unsent_reason())
        self._stopping = True
        self._wakeup.set()
        wait = partial(self._runtime.wait, self._done)
        if not (yield partial(wait, max(deadline - time.monotonic(), 0.1))) \
                and asyncio.isfuture(self._task):
            self._task.cancel()  # its finally sets _done
            yield partial(wait, 0.1)
        yield self._writer.reset

    def _unsent_reason(self) -> str:
        if self.failures:
            return f'unreachable ({self._last_error}), {self.failures} ' \
                f'failed attempts'
        if not self.connected:
            return 'not connected yet (the first attempt had not finished)'
        return 'Redis answers, but the time ran out while still sending'

    def _take(self) -> list[Item]:
        """The next batch to send: the item written ahead once its reply
        is due (``hurry``: now), else the head of the queue."""
        size = min(self.BATCH, self._runtime.write_batch)
        if self.unread is not None:  # a batch fits beside what is unread
            size = min(size, unread_limit(self._options.max_len))
        with self._lock:
            ahead = self._take_ahead()
            if ahead is not None:
                return ahead
            batch = list(itertools.islice(self._queue, size))
            self._idle = not batch and not self._stopping
            if batch:
                self._active_at = time.monotonic()
            return batch

    def _run(self) -> Steps[None]:
        try:
            yield from self._connect_early()
            while True:
                yield self._runtime.check_cancelled
                batch = self._take()
                if not batch:
                    if self._stopping:
                        return
                    yield from self._look_after()  # due at a write ahead
                    with self._lock:
                        timeout = self._idle_timeout()
                    yield partial(self._runtime.wait, self._wakeup, timeout)
                    self._wakeup.clear()
                    continue
                if self._stopping and self.failures:
                    return  # close() gave up on an unreachable Redis
                if self.unread is not None and self._taken is None:
                    yield from self.unread.wait(
                        batch, self._options.max_len, self._runtime)
                yield from self._send(batch)
                yield from self._look_after()
                yield self._runtime.pause  # let the others run
        except BaseException:  # cancelled: the event loop is ending
            if self.closed or not self._queue:
                raise
            yield self._runtime.go_on
            yield from self._drain(DRAIN_WAIT)
            raise
        finally:
            self._done.set()

    def _look_after(self) -> Steps[None]:
        """The looks at the readers' positions that came due once a batch
        went, or an item was written ahead (``Unread.look_after``): the
        puts meanwhile write ahead if the task was idle (the look uses a
        client of its own)."""
        if self.unread is not None and self.unread.looks_due():
            yield from self.unread.look_after()

    def _connect_early(self) -> Steps[None]:
        """Connect before the first packet, if none is queued yet (a
        server's publisher, started by ``initialize()``; a write_only
        emitter's starts with its first packet): that packet is written
        at once, by its put, not after a connection's set-up (about 10 ms,
        measured, during which the next ones queue behind it). Also the
        client that reads other servers' positions (:mod:`.positions`).
        Not on a cluster (the node to connect to depends on the packet).
        Best effort: a failure is the first packet's to meet and report."""
        if self._queue or self._connector.is_cluster:
            return
        try:
            client = self._writer.client(self._writer.node(None))
            if raw.has_pool(client):
                yield from raw.kept(client)
                self.connected = True
            if self.unread is not None and not self._queue:
                # not with a packet waiting meanwhile: its batch needs
                # no positions (the first look only notes where it starts)
                yield from self.unread.connect()
        except Exception as exc:
            self._log.debug('publisher: not connected early: %s', why(exc))

    def _drain(self, timeout: float) -> Steps[None]:
        """Write what is queued, for up to ``timeout`` s, when the task is
        ended from outside before ``close()`` (``asyncio.run`` cancelling
        every task of a server that never closed its manager); what is
        left is logged."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            self.hurry()
            yield from self._send(self._take())
        log = self._log.error if self._queue else self._log.warning
        log('publisher: the event loop is ending and the manager was not '
            'closed (ASGIApp(sio, on_shutdown=sio.shutdown) closes it); %s',
            f'{len(self._queue)} packets not written to Redis'
            if self._queue else 'what was queued is written')

    def _send(self, batch: list[Item]) -> Steps[None]:
        failure: Exception | None = None
        try:
            if self._taken is not None:  # written by _write_ahead
                taken, self._taken = self._taken, None
                replies = yield from taken.wait()
            else:
                if self._check_recent:
                    if (yield from self._requeue_lost()):
                        return  # the next batch starts with them
                    self._check_recent = False
                yield from self._writer.ready()
                client, batch = self._writer.route(batch)
                replies = yield from self._execute(client, batch)
        except (*RETRYABLE, *CLUSTER_ERRORS, *RESPONSE_ERRORS) as exc:
            # RESPONSE_ERRORS: refused while connecting (a wrong password,
            # a command the client needs that the ACL user may not run)
            failure = exc
        except REFUSED_LOCALLY as exc:
            if self._drop_unsendable(batch, exc):
                return  # the rest goes with the next batch
            self._log.exception('publisher: unexpected error: %s', why(exc))
            failure = exc
        except Exception as exc:  # a bug or an unexpected client error
            self._log.exception('publisher: unexpected error: %s', why(exc))
            failure = exc
        if failure is not None:
            yield from self._on_failure(failure)
            return
        done = next((i for i, r in enumerate(replies) if transient(r)),
                    len(batch))
        # delivered before leaving the queue: once flush() sees it empty,
        # every on_written has run (recovery's local delivery, for tests)
        yield from self._deliver(batch[:done], replies[:done])
        with self._lock:
            for _ in range(done):
                self._queue.popleft()
            # the kept connection is the puts' again, as the task's next
            # _take() would say: a put once flush() sees the queue empty
            # writes ahead
            self._idle = not self._queue and not self._stopping
        if done < len(batch):  # the rest waits: Redis is busy, not wrong
            yield from self._on_failure(replies[done])
            return
        if self.failures:
            self._log.warning('publisher: Redis %s is back after %d failed '
                              'attempts', self._connector.describe(),
                              self.failures)
            self.failures = 0
        self.connected = True

    def _drop_unsendable(self, batch: list[Item], exc: Exception) -> bool:
        """Take out of the queue the items no client could send (the
        library refused them before sending: retrying would jam the queue
        for good); True if there were any."""
        bad = {id(item) for item in batch if not sendable(item)}
        if not bad:
            return False
        with self._lock:
            self._queue = deque(i for i in self._queue if id(i) not in bad)
        self._stats.incr('errors', len(bad))
        self._log.error('publisher: dropped %d command(s) the Redis client '
                        'refused to send (%s); the rest of the queue goes '
                        'on', len(bad), why(exc))
        return True

    def _execute(self, client: Any, batch: list[Item]) -> Steps[list]:
        """Send ``batch`` in one pipeline: its replies, or the errors in
        their place. Raw (:mod:`.raw`) where the client has one pool."""
        commands = [item.command(self._options.max_len) for item in batch]
        if raw.has_pool(client):
            return (yield from raw.pipeline(client, commands))
        pipe = client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        return (yield partial(pipe.execute, raise_on_error=False))

    def _requeue_lost(self) -> Steps[bool]:
        """Put back at the head of the queue, in order, the recent entries
        that the server acknowledged but no longer has; True if any."""
        order = yield from self._recent.lost(self._writer,
                                             self._runtime.write_batch)
        if not order:
            return False
        with self._lock:
            for written in reversed(order):
                item = written.item
                self._queue.appendleft(Item(item.kind, item.target,
                                            item.payload, resent=True))
        self._stats.incr('resent', len(order))
        self._log.warning(
            'publisher: Redis %s lost %d entries it had acknowledged (a '
            'failover before they reached the replica, or a restart '
            'without persistence); writing them again', self._connector
            .describe(), len(order))
        return True

    def _deliver(self, batch: list[Item], replies: list) -> Steps[None]:
        """Count what was written and run each ``on_written`` (which may
        make steps: the manager's local delivery)."""
        ok = 0
        for item, reply in zip(batch, replies):
            if isinstance(reply, Exception):
                self._stats.incr('errors')
                self._log.error('%s (packet dropped; the same command would '
                                'be refused again)', explain(
                                    reply, f'{item.kind.upper()} to '
                                    f'{item.target!r}', self._connector
                                    .describe()))
                continue
            if item.kind == 'xadd':
                self._recent.add(item, reply)
                if self.unread is not None:
                    self.unread.wrote(item.target, reply)
            if item.resent:
                continue
            ok += 1
            if item.on_written is not None:
                try:
                    steps = item.on_written(reply)
                    if steps is not None:
                        yield from steps
                except Exception:
                    self._log.exception('publisher: on_written failed')
        self._stats.incr('published', ok)

    def _on_failure(self, exc: Exception) -> Steps[None]:
        self.connected = False
        self.failures += 1
        self._last_error = why(exc)
        # the server may have changed (a failover, a resharding) or lost
        # what it acknowledged: ask again where keys live, and what it has
        yield self._writer.reset
        self._check_recent = bool(self._recent)
        refused = not isinstance(exc, (*RETRYABLE, *CLUSTER_ERRORS)) and \
            not transient(exc)
        if refused and (self.failures == 1 or self.failures % 50 == 0):
            self._log.error('publisher: %s; %d packets buffered, retrying',
                            explain(exc, 'a command', self._connector
                                    .describe()), len(self._queue))
        if self.failures == 1:
            self._stats.incr('reconnects')
            if isinstance(exc, RETRYABLE):
                self._log.warning('publisher: Redis %s unreachable (%s); '
                                  'buffering %d packets and retrying',
                                  self._connector.describe(), why(exc),
                                  len(self._queue))
            elif not refused:
                self._log.warning('publisher: Redis %s cannot take writes '
                                  'yet (%s: %s); buffering %d packets and '
                                  'retrying', self._connector.describe(),
                                  type(exc).__name__, exc, len(self._queue))
        elif self.failures % 50 == 0 and not refused:
            self._log.error('publisher: Redis %s still unreachable after %d '
                            'attempts; %d packets buffered',
                            self._connector.describe(), self.failures,
                            len(self._queue))
        yield partial(self._runtime.sleep,
                      self._backoff.compute(self.failures))
