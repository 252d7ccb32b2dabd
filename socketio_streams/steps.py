"""Code written once for the sync and the asyncio managers.

What both managers share is written as *steps*: generators that yield
their I/O instead of doing it. Each ``yield call`` hands a callable taking
no arguments (``functools.partial(client.xread, ...)``,
``partial(runtime.sleep, 0.5)``) to a driver, which calls it and sends its
result back in, or throws its exception in. :func:`run` drives steps with
blocking calls (threads, eventlet, gevent); :func:`arun` awaits whatever a
call returns that is awaitable (``redis.asyncio`` commands,
``asyncio.sleep``). So the logic exists once; only the callables differ
between the worlds (redis-py's sync or asyncio clients, the server's
sleep/event/task primitives).

Rules for steps: never ``yield`` while holding a ``threading`` lock (in
the asyncio world another task on the loop would block on it); a call that
may raise is yielded inside the ``try`` that handles it, as if it were
made there.
"""
from __future__ import annotations

import functools
import inspect
from types import CoroutineType, GeneratorType
from typing import Any, Callable, Generator, TypeVar

R = TypeVar('R')
#: a generator yielding calls, returning R
Steps = Generator[Callable[[], Any], Any, R]


def run(steps: Steps[R]) -> R:
    """Drive ``steps`` with blocking calls; return what they return."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:  # the last call's result (or its error) handed in
            call = steps.send(value) if error is None else \
                steps.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = call(), None
        except BaseException as exc:  # given to the steps to handle
            value, error = None, exc


async def arun(steps: Steps[R]) -> R:
    """Drive ``steps`` on the running event loop, awaiting each call's
    result if it is awaitable; return what they return. A cancellation
    is thrown into the steps (their ``finally`` blocks run)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:  # as in ``run``
            call = steps.send(value) if error is None else \
                steps.throw(error)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = call(), None
            if value is not None and (type(value) is CoroutineType or
                                      inspect.isawaitable(value)):
                value = await value
        except BaseException as exc:  # given to the steps to handle
            value, error = None, exc


def done(value: R = None) -> Steps[R]:  # type: ignore[assignment]
    """Steps that do no I/O and return ``value`` (for an override that
    has nothing to wait for)."""
    return value
    yield  # pragma: no cover (makes this a generator)


def blocking(func: Callable[..., Any]) -> Callable[..., Any]:
    """A function driving the steps ``func`` makes (if it makes steps:
    its result otherwise), with blocking calls."""
    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        if type(result) is GeneratorType:
            return run(result)
        return result
    return _returning(call)


def awaitable(func: Callable[..., Any]) -> Callable[..., Any]:
    """A coroutine function driving the steps ``func`` makes (if it
    makes steps: its result otherwise, awaited if awaitable)."""
    @functools.wraps(func)
    async def call(*args: Any, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        if inspect.isgenerator(result):
            return await arun(result)  # type: ignore[arg-type]
        if inspect.isawaitable(result):
            return await result
        return result
    return _returning(call)


def _returning(call: Callable) -> Callable:
    """Give ``call`` its own signature, returning what its driven steps
    return (``Steps[R]`` -> ``R``, as ``async def`` shows it), for
    ``help()`` and tools."""
    annotations = dict(getattr(call, '__annotations__', {}))
    returns = annotations.get('return')
    if isinstance(returns, str) and returns.startswith('Steps['):
        annotations['return'] = returns[len('Steps['):-1]
        call.__annotations__ = annotations
        signature = inspect.signature(call)
        call.__signature__ = signature.replace(  # type: ignore
            return_annotation=annotations['return'])
    return call
