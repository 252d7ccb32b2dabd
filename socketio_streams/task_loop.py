"""A read loop that survives errors: the base of the stream readers and of
the subscriber.

Each loop owns its connection and, after any error, reconnects with
backoff (its subclass resumes where it was, so nothing written meanwhile is
skipped). ``stop()`` cuts the blocked call short (it closes the connection
under it, or cancels the asyncio task) so shutdown does not wait for
``block_time_ms``.

The loops are :mod:`steps <socketio_streams.steps>`: the same code runs
on redis-py's sync clients and on ``redis.asyncio`` ones, as the runtime
drives it.
"""
from __future__ import annotations

import inspect
import time
from functools import partial
from typing import Any, Callable

from .backoff import Backoff
from .connection import (CLUSTER_ERRORS, RESPONSE_ERRORS, RETRYABLE,
                         close_client, explain, transient, why)
from .steps import Steps


class Loop:
    """A task that survives errors: run ``step`` until stopped."""

    what = 'reader'
    command = 'XREAD'
    REINTERRUPT = 0.2

    def __init__(self, connector, runtime, stats, log):
        self._connector = connector
        self._runtime = runtime
        self._stats = stats
        self._log = log
        self._backoff = Backoff()
        self._client: Any = None
        #: the client of the command being sent (see ``_cut``)
        self._used: Any = None
        self._stopped = False
        self._done: Any = None
        #: set by ``stop()``: ends a wait between attempts
        self._stopping = runtime.event()
        self._task: Any = None
        self._started = False
        self.failures = 0
        self.connected = False

    def start(self) -> None:
        self._done = self._runtime.event()
        self._task = self._runtime.spawn(self._run())

    @property
    def running(self) -> bool:
        """True from ``start()`` until the task has ended."""
        return self._done is not None and not self._done.is_set()

    def stop(self) -> None:
        """Tell the task to end (a blocked command is cut short)."""
        self._stopped = True
        self._stopping.set()
        self._runtime.interrupt(self._task, self._cut)
        if self._done is not None and not self._started:
            # a task cancelled before it ran never runs (asyncio); a
            # thread yet to run ends at once, having nothing to close
            self._done.set()

    def join(self, timeout: float) -> Steps[bool]:
        """Wait up to ``timeout`` s for the task to end; False if not.
        It is cut short again every ``REINTERRUPT`` s: a thread that was
        busy when stopped may have sent one more blocking command."""
        deadline = time.monotonic() + timeout
        while self.running:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if (yield partial(self._runtime.wait, self._done,
                              min(left, self.REINTERRUPT))):
                return True
            self._runtime.interrupt(self._task, self._cut)
        return True

    def _cut(self) -> Steps[None]:
        """Close what a blocked command uses (``stop``, ``join``): also the
        client the task had taken before it was let go, which redis-py
        reconnects if the task sends one more command on it."""
        used = self._used
        if used is not None and used is not self._client:
            yield partial(close_client, used, self._log.debug)
        yield from self._disconnect()

    def _disconnect(self) -> Steps[None]:
        client, self._client = self._client, None
        if client is not None:
            yield partial(close_client, client, self._log.debug)

    def _run(self) -> Steps[None]:
        self._started = True
        try:
            yield from self._loop()
        finally:
            try:
                yield from self._disconnect()
            finally:
                self._done.set()

    def _loop(self) -> Steps[None]:
        while not self._stopped:
            yield self._runtime.check_cancelled
            try:
                yield from self.step()
            except Exception as exc:
                if self._stopped:
                    break
                yield from self._on_failure(exc)
                continue
            if self.failures:
                self._log.warning('%s: reconnected to Redis %s after %d '
                                  'failed attempts', self.what,
                                  self._connector.describe(), self.failures)
                self.failures = 0
            self.connected = True

    def _on_failure(self, exc: Exception) -> Steps[None]:
        self.connected = False
        self.failures += 1
        yield from self._disconnect()
        if isinstance(exc, RESPONSE_ERRORS) and not transient(exc):
            if self.failures == 1 or self.failures % 50 == 0:
                self._log.error('%s: %s; retrying', self.what, explain(
                    exc, self.command, self._connector.describe()))
        elif not isinstance(exc, (*RETRYABLE, *CLUSTER_ERRORS)) and \
                not transient(exc):
            self._log.error('%s: %s', self.what, why(exc), exc_info=exc)
        elif self.failures == 1:
            self._stats.incr('reconnects')
            self._log.warning('%s: lost Redis %s (%s); reconnecting',
                              self.what, self._connector.describe(),
                              why(exc))
        else:
            self._log.error('%s: Redis %s still unreachable (attempt %d): '
                            '%s', self.what, self._connector.describe(),
                            self.failures, why(exc))
        # cut short by stop()
        yield partial(self._runtime.wait, self._stopping,
                      self._backoff.compute(self.failures))

    def step(self) -> Steps[None]:
        raise NotImplementedError

    def _hand_over(self, handle: Callable,
                   *args: Any) -> Steps[None] | None:
        """Give what was read to the manager: ``handle`` does it, or
        returns the steps to run (given back; None if none). Whatever goes
        wrong there is about one entry or message, never about the
        connection: it is counted and logged, and reading goes on."""
        try:
            result = handle(*args)
        except Exception:
            self._handling_failed()
            return None
        return self._guarded(result) if inspect.isgenerator(result) else None

    def _guarded(self, steps: Any) -> Steps[None]:
        try:
            yield from steps
        except Exception:
            self._handling_failed()

    def _handling_failed(self) -> None:
        self._stats.incr('errors')
        self._log.exception('%s: error handling what was read; skipped',
                            self.what)
