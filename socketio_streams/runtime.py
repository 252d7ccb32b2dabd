"""Tasks, sleeps and events from the server's async mode, or threading.

A server's own primitives make one code path serve threading, eventlet and
gevent; a ``write_only`` emitter with no server uses threads.
"""
from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import Any, Callable

from .steps import Steps, arun, awaitable, blocking, run


class Runtime:
    """``start``, ``sleep``, ``event`` and ``wait`` for the manager's tasks;
    ``spawn`` and ``drive`` run :mod:`steps <socketio_streams.steps>`. The
    sync world's: blocking calls."""

    #: how steps are driven in this world
    drive = staticmethod(run)
    #: most commands in one pipeline, most entries asked of one XREAD
    #: (``read_count`` is the user's), and how many emits or handled
    #: entries in a row before the task lets others run (``sleep(0)``):
    #: in the asyncio world, what holds the event loop at a time
    write_batch = 500
    read_batch = 10 ** 9
    pause_every = 10 ** 18
    #: and, for emits, at least this many seconds between two pauses
    #: (each is a turn of the loop, a pipeline sent by the publisher)
    pause_gap = 0.0
    #: a callable for python-socketio (callbacks, patched methods) that
    #: drives the steps of a function in this world
    function = staticmethod(blocking)

    def __init__(self, server: Any = None):
        self.server = server

    @property
    def async_mode(self) -> str:
        # the engine.io server's: python-socketio sets its own attribute
        # after it has given the server to its manager
        eio = getattr(self.server, 'eio', None)
        return getattr(eio, 'async_mode', None) or \
            getattr(self.server, 'async_mode', None) or 'threading'

    def start(self, target: Callable, *args: Any) -> Any:
        if self.server is not None:
            return self.server.start_background_task(target, *args)
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name='socketio-streams')
        thread.start()
        return thread

    def sleep(self, seconds: float) -> None:
        if self.server is not None:
            self.server.sleep(seconds)
        else:
            time.sleep(seconds)

    def event(self) -> Any:
        if self.server is not None:
            return self.server.eio.create_event()
        return threading.Event()

    def wait(self, event: Any, timeout: float | None) -> bool:
        """Wait until ``event`` is set, up to ``timeout`` s; its state."""
        return bool(event.wait(timeout))

    def pause(self) -> Any:
        """Let the other tasks run (asyncio); here nothing to do."""
        return None

    def go_on(self) -> None:
        """A task that caught its cancellation goes on working for a while
        (asyncio); here nothing to do."""

    def check_cancelled(self) -> None:
        """Raise the task's cancellation if something it awaited caught
        it (asyncio); here nothing to do."""

    def spawn(self, steps: Steps) -> Any:
        """Drive ``steps`` in a background task of the server's."""
        return self.start(run, steps)

    def interrupt(self, task: Any, close: Callable[[], Steps]) -> None:
        """Cut short what ``task`` is blocked in: here by closing its
        connections under it (the steps ``close()`` returns)."""
        run(close())


class AsyncRuntime(Runtime):
    """The asyncio world's: coroutines, and tasks on the running loop
    (the ``AsyncServer``'s ``start_background_task`` when there is one).
    """

    drive = staticmethod(arun)  # type: ignore[assignment]
    function = staticmethod(awaitable)
    # a pipeline is packed and its replies read (raw.py) with the loop
    # held: 100 XADDs take 0.7 ms in all, Redis' replies awaited included
    # (25: 0.24 ms; redis.asyncio's own pipeline took ~4 ms for 100)
    write_batch = 100
    read_batch = 100
    pause_every = 25
    # (25 emits take about 0.3 ms, 0.6 ms with 10 local sockets each:
    # pausing every 25, a burst spent a quarter of its time in the turns
    # of the loop and the publisher's smaller pipelines, measured in one
    # process; the loop is still held less than a pipeline holds it)
    pause_gap = 0.0007

    def __init__(self, server: Any = None):
        super().__init__(server)
        #: the tasks started and not done (asyncio holds weak references
        #: only: a task nobody holds may be collected before it ends)
        self.tasks: set = set()

    @property
    def async_mode(self) -> str:
        return 'asyncio'

    def start(self, target: Callable, *args: Any) -> Any:
        """``target(*args)`` as a task (a coroutine function's
        coroutine; a plain function's result wrapped)."""
        if self.server is not None:
            task = self.server.start_background_task(target, *args)
        else:
            task = asyncio.ensure_future(target(*args))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        await asyncio.sleep(seconds)

    def event(self) -> Any:
        return Event()

    def pause(self) -> Any:
        return asyncio.sleep(0)

    def go_on(self) -> None:
        task = asyncio.current_task()
        if task is not None and hasattr(task, 'uncancel'):  # >= 3.11
            task.uncancel()  # its waits behave again, timeouts included

    def check_cancelled(self) -> None:
        # a loop task asked to end must end, even if the cancellation was
        # lost inside a call it awaited (seen with redis.asyncio on 3.11:
        # asyncio.run then waits for the task for ever)
        task = asyncio.current_task()
        if task is not None and getattr(task, 'cancelling', None) and \
                task.cancelling():
            raise asyncio.CancelledError()

    async def wait(self, event: Any,  # type: ignore[override]
                   timeout: float | None) -> bool:
        return await event.wait(timeout)

    def spawn(self, steps: Steps) -> Any:
        task = self.start(arun, steps)
        name = getattr(steps, '__qualname__', 'steps')
        task.set_name(f'socketio_streams {name}')
        return task

    def interrupt(self, task: Any, close: Callable[[], Steps]) -> None:
        """Cancel ``task``: the cancellation is thrown into its steps,
        whose ``finally`` closes the connections."""
        if task is not None:
            task.cancel()


class Event:
    """``asyncio.Event``'s ``set``, ``clear`` and ``is_set``; ``wait``
    takes a timeout. A wait is one future (and one timer if timed):
    ``asyncio.wait_for`` or ``asyncio.wait`` make a task and more (the
    emitting server: 280 to 265 us per entry at 2000/s without them). Not
    ``asyncio.timeout`` either: on 3.11 it, or ``wait_for``, can swallow a
    cancellation that comes as the timeout expires (the task then waits
    on, "cancelling", and ``asyncio.run`` never ends); a cancellation here
    always reaches the waiting task."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: list = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until set, up to ``timeout`` s if not None; its state."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(
            timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)
            if timer is not None:
                timer.cancel()
        return self._set


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)


def check_patched(async_mode: str) -> None:
    """Blocking Redis I/O under eventlet/gevent needs patched sockets."""
    if async_mode == 'eventlet':
        from eventlet.patcher import is_monkey_patched
        patched = is_monkey_patched('socket')
    elif async_mode == 'gevent':
        from gevent.monkey import is_module_patched
        patched = is_module_patched('socket')
    else:
        return
    if not patched:
        raise RuntimeError(
            f'socketio_streams needs a monkey patched standard library under '
            f'{async_mode}: call {async_mode}.monkey_patch() (eventlet) or '
            f'gevent.monkey.patch_all() before importing anything else')


def wake_closed_waiters() -> None:
    """Under eventlet, wake the green threads still waiting on a socket that
    was just closed by another one (``close_client`` under a blocked
    ``XREAD``). gevent and threads are woken by the close itself, but
    eventlet's hub only learns that a descriptor is dead when a green socket
    reuses its number: until then the waiter hangs, and an ``os.pipe`` that
    gets the number (``subprocess``) fails with "Second simultaneous read".
    Call it right after closing, before anything yields."""
    hubs = sys.modules.get('eventlet.hubs')
    if hubs is None or not _eventlet_patched():
        return
    hub = hubs.get_hub()
    for bucket in (hub.listeners[hub.READ], hub.listeners[hub.WRITE]):
        for fileno in list(bucket):
            try:
                os.fstat(fileno)
            except OSError:  # closed: throw IOClosed into its waiter
                hub.mark_as_reopened(fileno)


def _eventlet_patched() -> bool:
    from eventlet.patcher import is_monkey_patched
    return bool(is_monkey_patched('socket'))
