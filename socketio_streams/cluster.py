"""Requests awaiting answers from other servers, by ``requestId``."""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable


def new_request_id() -> str:
    """16 hex characters, like Node's ``randomBytes(8)``."""
    return secrets.token_hex(8)


@dataclass
class ClientAcks:
    """An emit with a callback to sockets on other servers: every
    BROADCAST_ACK calls ``callback(*args)``. A request addressed to a single
    socket ends with its first answer; any request ends at ``expires``."""
    callback: Callable[..., Any]
    expires: float
    single: bool = True
    answers: int = field(default=0)

    def on_ack(self, args: list) -> bool:
        """Handle one answer; True when the request is complete."""
        self.answers += 1
        self.callback(*args)
        return self.single

    def on_client_count(self, count: int) -> bool:
        return False


class Pending:
    """The table of open requests; expired ones are dropped on access."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._requests)

    def add(self, request_id: str, request: Any) -> None:
        with self._lock:
            self._expire()
            self._requests[request_id] = request

    def get(self, request_id: str | None) -> Any:
        if request_id is None:
            return None
        with self._lock:
            self._expire()
            return self._requests.get(request_id)

    def discard(self, request_id: str | None) -> None:
        with self._lock:
            self._requests.pop(request_id or '', None)

    def _expire(self) -> None:
        now = time.monotonic()
        for rid in [r for r, req in self._requests.items()
                    if req.expires <= now]:
            del self._requests[rid]
