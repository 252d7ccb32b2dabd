"""Real asyncio Socket.IO servers for the integration tests.

An ``AsyncNode`` is a ``socketio.AsyncServer`` with an
``AsyncRedisStreamsManager``, served by uvicorn on a free loopback port,
on an event loop of its own in a thread (as another process would be). Its
``sio`` and ``mgr`` are blocking views (:class:`OnLoop`): a test calls
``node.sio.emit(...)`` or ``node.mgr.fetch_sockets(...)`` as it does on a
sync ``Node``, and the coroutine runs on the node's loop. So the suite's
tests written against ``Node`` run against the asyncio manager too
(``SIO_TEST_MANAGER=asyncio``).
"""
from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from typing import Any

import socketio
import uvicorn
from socketio.async_admin import InstrumentedAsyncServer

from socketio_streams import AsyncRedisStreamsManager
from socketio_streams.cluster import RemoteSocket
from socketio_streams.steps import arun

from .nodes import Serving

#: how long a blocking view waits for a coroutine on the loop
CALL_TIMEOUT = 30.0


class Loop:
    """An event loop running in a daemon thread until ``stop()``."""

    def __init__(self, debug: bool = False, selector: Any = None) -> None:
        self.loop = asyncio.new_event_loop() if selector is None else \
            asyncio.SelectorEventLoop(selector)
        self.loop.set_debug(debug)
        self.thread = threading.Thread(target=self.loop.run_forever,
                                       daemon=True, name='async-node')
        self.thread.start()

    def run(self, coro: Any, timeout: float = CALL_TIMEOUT) -> Any:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(
            timeout)

    def on_loop(self) -> bool:
        return threading.current_thread() is self.thread

    def stop(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks()
                     if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class OnLoop:
    """A blocking view of an object that lives on ``loop``: every method
    runs there; a coroutine's result is awaited there and returned. From
    the loop's own thread (a sync event handler), a coroutine is started
    as a task instead (it cannot be waited for there). Once the loop is
    closed (the node stopped), a method runs in the caller's thread: a
    closed manager's ``stats()`` or ``healthy()`` still answer."""

    def __init__(self, target: Any, loop: Loop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr) or inspect.isclass(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(attr, *args, **kwargs)
        return call

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if self._loop.on_loop():
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                return asyncio.ensure_future(result)
            return result
        if self._loop.loop.is_closed():
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                close = getattr(result, 'close', None)
                if close is not None:
                    close()
                raise RuntimeError(f'{func.__qualname__}: the node is '
                                   f'stopped, its event loop closed')
            return self._wrap(result)

        async def invoke() -> Any:
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result
        return self._wrap(self._loop.run(invoke()))

    def _wrap(self, result: Any) -> Any:
        # (the Admin UI's instrumentation too: its shutdown() is awaited)
        if isinstance(result, (RemoteSocket,
                               InstrumentedAsyncServer)):
            return OnLoop(result, self._loop)
        if isinstance(result, list) and result and \
                isinstance(result[0], RemoteSocket):
            return [OnLoop(r, self._loop) for r in result]
        return result

    def __repr__(self) -> str:
        return f'<OnLoop {self._target!r}>'


class AsyncHTTPServer:
    """An ASGI app served by uvicorn on a free loopback port, on
    ``loop``, until ``stop()``."""

    def __init__(self, app: Any, loop: Loop) -> None:
        self._loop = loop
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        self.port: int = sock.getsockname()[1]
        self.url = f'http://127.0.0.1:{self.port}'
        self.server = uvicorn.Server(uvicorn.Config(
            app, log_level='warning', lifespan='off', ws='websockets-sansio'
            if _has_sansio() else 'auto'))

        async def start() -> None:
            self._task = asyncio.ensure_future(
                self.server.serve(sockets=[sock]))
            while not self.server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)
        loop.run(start())

    def stop(self) -> None:
        async def stop() -> None:
            self.server.should_exit = True
            await asyncio.wait_for(self._task, 5)
        self._loop.run(stop())


def _has_sansio() -> bool:
    """uvicorn's sans-I/O websockets implementation (newer releases)."""
    try:
        import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa
    except ImportError:
        return False
    return True


class AsyncNode(Serving):
    """An asyncio python-socketio server sharing Redis (see the module)."""

    def __init__(self, redis_url: str, namespaces: list,
                 loop: Loop | None = None, **options: Any) -> None:
        self.loop = loop or Loop()

        async def make() -> tuple:
            mgr = AsyncRedisStreamsManager(redis_url, **options)
            sio = socketio.AsyncServer(client_manager=mgr,
                                       async_mode='asgi',
                                       namespaces=namespaces)
            return mgr, sio
        self._mgr, self._sio = self.loop.run(make())
        self.mgr = OnLoop(self._mgr, self.loop)
        self.sio = OnLoop(self._sio, self.loop)
        self.events: list = []
        for ns in namespaces:
            self._sio.on('join', self._join, namespace=ns)
            self._sio.on('leave', self._leave, namespace=ns)
            self._sio.on('echo', self._echo, namespace=ns)
        self.http = AsyncHTTPServer(socketio.ASGIApp(self._sio), self.loop)
        self.url = self.http.url

    async def _join(self, sid: str, room: str) -> None:
        await self._sio.enter_room(sid, room)

    async def _leave(self, sid: str, room: str) -> None:
        await self._sio.leave_room(sid, room)

    async def _echo(self, sid: str, data: Any) -> Any:
        return data

    def drive(self, steps: Any) -> Any:
        return self.loop.run(arun(steps))

    def forked(self) -> None:
        self.loop = Loop()
        self.mgr = OnLoop(self._mgr, self.loop)
        self.sio = OnLoop(self._sio, self.loop)

    def at_once(self, calls: Any) -> list:
        async def make() -> list:  # the views start tasks on the loop
            return [await r if inspect.isawaitable(r) else r
                    for r in calls()]
        return self.loop.run(make())

    def stop(self) -> None:
        """Stop serving, close the manager, end the loop (once)."""
        if self.loop.loop.is_closed():
            return
        try:
            self.http.stop()
            self.loop.run(self._mgr.close(timeout=2))
        finally:
            self.loop.stop()
