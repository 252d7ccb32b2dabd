"""The publisher's write-ahead, as decisions: a ``put`` that finds the
task idle writes its command itself (:func:`.raw.write_ahead`), the next
``put`` reads the reply if it has come, and the task reads it once it is
due (``IDLE_WAIT`` after it was written), at once if ``flush()`` waits
or something is queued behind it. An idle task with nothing written
ahead waits with no timeout: the first write ahead after that wakes it.
No waiting here: :class:`WriteAhead` is mixed into
:class:`.publisher.Publisher`, whose lock guards its state."""
from __future__ import annotations

import time
from typing import Any

from . import raw
from .items import Item
from .steps import run


class WriteAhead:
    """The write-ahead's state; every method is called under the
    publisher's lock, but ``hurry``."""

    #: the reply to an item written ahead is the task's to read after this
    #: long (s) if no put read it
    IDLE_WAIT = 0.1
    #: a put this soon (s) after one written ahead may be a burst's: the
    #: second of two such gaps in a row goes by the task's pipelines
    BURST_GAP = 0.0002

    # the publisher's
    _queue: Any
    _options: Any
    _writer: Any
    _stopping: bool
    _check_recent: bool
    connected: bool
    failures: int
    unread: Any
    _deliver: Any

    def _init_write_ahead(self) -> None:
        #: the task waits, nothing queued: a put may write ahead
        self._idle = False
        #: the head of the queue written ahead; the same, once the task
        #: took it
        self._ahead: raw.Ahead | None = None
        self._taken: raw.Ahead | None = None
        #: the gap before the last item written ahead was a burst's
        self._short = False
        #: the task waits with no timeout: a write ahead must wake it
        self._sleeping = False
        #: ``flush()`` waits: the task reads the reply now
        self._urgent = False
        #: when the last command was written (monotonic)
        self._active_at = 0.0

    def _write_ahead(self, item: Item) -> bool:
        """Write ``item`` from the caller while the task is idle,
        everything before it answered: a hop to the task's thread
        (asyncio: to the task) less. Only if nothing must come first: no
        failure to recover from, no reader to wait for, no positions to
        look at first, a connection kept for its node. True if the task
        need not wake: the next ``put`` (``_collect``), ``flush`` or the
        task when it is due reads the reply (not for an ``on_written``: a
        local delivery waiting for the ID; nor if the task waits untimed;
        nor if a look at the positions is due: the task's, after it)."""
        if len(self._queue) != 1 or self.failures or self._stopping or \
                not self.connected or self._check_recent or (
                    self.unread is not None and
                    not self.unread.clear(item, self._options.max_len)):
            return False
        client = self._writer.made(item.key)
        conn = None if client is None else \
            raw.write_ahead(client, [item.command(self._options.max_len)])
        if conn is None:
            return False
        self._idle, self._ahead = False, raw.Ahead(client, conn)
        self._active_at = self._ahead.at
        if self._sleeping:  # it waits with no timeout: it must time this
            self._sleeping = False
            return False
        # a look at the positions that is due: the task's, after this
        return item.on_written is None and not (
            self.unread is not None and self.unread.looks_due())

    def _collect(self) -> None:
        """Read the reply to the item written ahead if it has come; an
        entry ID ends the item here (else: the task)."""
        ahead = self._ahead
        assert ahead is not None
        if self._queue[0].on_written is not None:
            return  # the task was woken for it
        reply = ahead.now()
        if reply is not raw.NOT_YET and not isinstance(reply, Exception):
            self._ahead, self._urgent = None, False
            run(self._deliver([self._queue[0]], [reply]))
            self._queue.popleft()
            # a gap as short as a burst's once may be a late emit: twice,
            # it is a burst (the task's pipelines take it)
            short = time.monotonic() < ahead.at + self.BURST_GAP
            self._idle = not (short and self._short)
            self._short = short

    def _take_ahead(self) -> list[Item] | None:
        """For the task: the item written ahead if its reply is the
        task's to read now, ``[]`` if it is not yet (a put may read it),
        None if nothing is written ahead."""
        self._sleeping = False
        ahead = self._ahead
        if ahead is None:
            return None
        if not (self._urgent or self._stopping or
                len(self._queue) > 1 or
                self._queue[0].on_written is not None or
                time.monotonic() >= ahead.at + self.IDLE_WAIT):
            return []
        self._taken, self._ahead, self._urgent = ahead, None, False
        return [self._queue[0]]

    def _idle_timeout(self) -> float | None:
        """How long the idle task waits: until the reply written ahead is
        due; ``IDLE_WAIT`` after the last write; then with no timeout
        (the next write ahead wakes it)."""
        now = time.monotonic()
        if self._ahead is not None:
            return max(self._ahead.at + self.IDLE_WAIT - now, 0.0)
        left = self._active_at + self.IDLE_WAIT - now
        if left > 0:
            return left
        self._sleeping = True
        return None

    def hurry(self) -> bool:
        """Have the task read the reply written ahead now; False if there
        is none."""
        if self._ahead is None:
            return False
        self._urgent = True
        return True
