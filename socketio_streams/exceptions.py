"""Exceptions raised to users of the manager."""
from __future__ import annotations

from typing import Any


class SocketIOStreamsError(Exception):
    """Base class of this package's errors."""


class BufferFullError(SocketIOStreamsError):
    """``emit`` found the outgoing buffer full: Redis is not keeping up or is
    unreachable, and ``buffer_size`` packets are already waiting."""


class AckTimeoutError(SocketIOStreamsError):
    """Not every expected answer arrived in time.

    ``responses`` holds the answers that did arrive.
    """

    def __init__(self, message: str, responses: list[Any] | None = None):
        super().__init__(message)
        self.responses: list[Any] = list(responses or [])
