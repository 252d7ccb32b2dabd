"""Operations: the public methods written once as steps in the shared core,
which each manager (a *face*) offers in its world: blocking methods for
``RedisStreamsManager``, coroutines for ``AsyncRedisStreamsManager``.

``@operation`` marks them; ``@faced(wrap)`` turns each into a method of
the face (``steps.blocking`` or ``steps.awaitable``). Type checkers see
the result through :class:`Operation`: on a :class:`SyncFace` a method
returning what the steps return, on an :class:`AsyncFace` a coroutine
method, on the core itself the steps.
"""
from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Concatenate,
                    Generic, ParamSpec, TypeVar, overload)

from .steps import Steps

P = ParamSpec('P')
R = TypeVar('R')
C = TypeVar('C', bound=type)

#: the attribute ``@operation`` sets on what it marks
MARK = '_operation'


class SyncFace:
    """A manager whose operations are blocking methods."""


class AsyncFace:
    """A manager whose operations are coroutine methods."""


class Operation(Generic[P, R]):
    """What type checkers see of an ``@operation`` (at run time the
    function itself, marked, until ``@faced`` wraps it)."""

    def __init__(self, func: Callable[Concatenate[Any, P], Steps[R]]):
        self.func = func

    @overload
    def __get__(self, obj: None, owner: Any
                ) -> Callable[Concatenate[Any, P], Steps[R]]: ...

    @overload
    def __get__(self, obj: AsyncFace, owner: Any
                ) -> Callable[P, Awaitable[R]]: ...

    @overload
    def __get__(self, obj: SyncFace, owner: Any) -> Callable[P, R]: ...

    @overload
    def __get__(self, obj: object, owner: Any) -> Callable[P, Steps[R]]: ...

    def __get__(self, obj: Any, owner: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


if TYPE_CHECKING:
    operation = Operation

    class Untyped:
        """A python-socketio base class, as type checkers see it (the
        package is untyped: a base of type Any would make a manager match
        every overload of :class:`Operation`)."""

        def __init__(self, *args: Any, **kwargs: Any): ...

        def __getattr__(self, name: str) -> Any: ...
else:
    def operation(func):
        """Mark ``func`` (steps) as an operation of both managers."""
        setattr(func, MARK, True)
        return func


def names(cls: type) -> list[str]:
    """The operations ``cls`` has (its own and inherited)."""
    return sorted(name for name in dir(cls)
                  if getattr(getattr(cls, name, None), MARK, False))


def faced(wrap: Callable[[Callable], Callable]) -> Callable[[C], C]:
    """A class decorator: each operation becomes a method driving the
    steps of the same name with ``wrap`` (``steps.blocking`` or
    ``steps.awaitable``)."""
    def decorate(cls: C) -> C:
        for name in names(cls):
            method = wrap(getattr(cls, name))
            setattr(method, MARK, False)  # wrapped once
            setattr(cls, name, method)
        return cls
    return decorate
