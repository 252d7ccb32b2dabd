"""What the manager knows of each of this server's sockets: one state
object per socket, and one per CONNECT being handled (it has no sid yet)."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class LocalSocket:
    """One socket of this server in one namespace."""
    connected_at: float = field(default_factory=time.time)
    #: the CONNECT packet's auth (``fetch_sockets`` reports it, as Node)
    auth: Any = None
    #: connection state recovery: the private id given to the client
    pid: str | None = None
    #: ``offset_key`` of the namespace's stream when it joined: it gets
    #: the broadcasts after it (live or replayed), none before
    start: tuple[int, int] | None = None
    #: the stored session being restored; None once replayed
    restoring: dict | None = None
    #: live ``(offset, eio_pkts)`` held while the session is restored
    held: list = field(default_factory=list)
    #: the offset its replay went up to: nothing up to it is sent again
    replayed: str | None = None
    #: why its connection is closing, while python-socketio handles it
    reason: str | None = None


@dataclass
class Handshake:
    """A CONNECT packet being handled: what python-socketio does not pass
    to its manager's ``pre_connect``."""
    auth: Any = None
    #: the stored session the client asked to restore, if it can be
    session: dict | None = None


class LocalSockets:
    """The state of every local socket, by ``(namespace, sid)``, and of
    every CONNECT being handled, by ``(eio_sid, namespace)``."""

    def __init__(self) -> None:
        self._sockets: dict[tuple[str, str], LocalSocket] = {}
        self._handshakes: dict[tuple[str, str], Handshake] = {}

    def get(self, namespace: str, sid: Any) -> LocalSocket | None:
        return self._sockets.get((namespace, sid))

    def add(self, namespace: str, sid: str) -> LocalSocket:
        """The socket's state, made if it has none yet."""
        return self._sockets.setdefault((namespace, sid), LocalSocket())

    def remove(self, namespace: str, sid: str) -> LocalSocket | None:
        """Forget a socket; a replay still running for it ends without
        sending what was held for it."""
        sock = self._sockets.pop((namespace, sid), None)
        if sock is not None:
            sock.restoring = None
            sock.held = []
        return sock

    @contextlib.contextmanager
    def handshake(self, eio_sid: str, namespace: str,
                  auth: Any) -> Iterator[Handshake]:
        """The state of a CONNECT for the length of its handling."""
        key = (eio_sid, namespace)
        self._handshakes[key] = made = Handshake(auth)
        try:
            yield made
        finally:
            self._handshakes.pop(key, None)

    def handshake_of(self, eio_sid: str, namespace: str) -> Handshake | None:
        return self._handshakes.get((eio_sid, namespace))
