"""What the handlers and the other parts do to this server's sockets
through the manager (see :class:`.handlers.Local`)."""
from __future__ import annotations

from functools import partial
from typing import Any

from . import protocol
from .delivery import targets
from .protocol import Message
from .steps import Steps


class LocalOps:
    """Targets, delivery, answers, room operations and disconnections of
    local sockets, for the handlers."""

    uid: str
    options: Any
    server: Any
    rooms: dict
    _delivery: Any
    _recovery: Any
    _links: Any
    _runtime: Any
    _stats: Any
    basic_enter_room: Any
    basic_leave_room: Any

    def _targets(self, namespace: str, rooms: list,
                 except_rooms: list) -> list[tuple[str, str]]:
        return targets(self, namespace, rooms, except_rooms)

    def _has_sockets(self, namespace: str | None,
                     rooms: list | None = None) -> bool:
        """Whether any local socket is in the namespace (and in any of
        ``rooms``, if not empty: as ``get_participants`` finds them)."""
        found = self.rooms.get(namespace)
        if self.server is None or not found:
            return False
        return not rooms or any(map(found.get, rooms))

    def _deliver(self, namespace: str, event_data: list, rooms: list,
                 except_rooms: list, offset: str | None = None,
                 plain: bool = False,
                 text: str | None = None) -> Steps[None] | None:
        """The steps sending an EVENT to its local sockets, or None
        (``plain``, ``text``: see :meth:`.Delivery.plan`)."""
        sends = self._delivery.plan(namespace, event_data, rooms,
                                    except_rooms, offset,
                                    self._recovery is not None, plain, text)
        return self._send(sends) if sends else None

    def _send(self, sends: list[tuple[str, list]]) -> Steps[None] | None:
        """Send ``(eio_sid, eio_pkts)``: steps, which the asyncio face
        awaits (the sync face sends at once, and returns None)."""
        return self._send_all(sends)

    def _send_all(self, sends: list[tuple[str, list]]) -> Steps[None]:
        for eio_sid, eio_pkts in sends:  # flat: one generator per entry
            for p in eio_pkts:
                yield partial(self.server._send_eio_packet, eio_sid, p)
        self._stats.incr('delivered', len(sends))

    def _send_eio(self, eio_sid: str, eio_pkts: list) -> Steps[None]:
        for p in eio_pkts:
            yield partial(self.server._send_eio_packet, eio_sid, p)

    def _respond(self, request: Message, type_: int,
                 data: dict) -> Steps[None]:
        """Answer a request on the requester's private channel."""
        yield from self._links.send_pubsub(
            protocol.private_channel(self.options.channel_prefix,
                                     request.nsp, request.uid),
            Message(type=type_, data=data, uid=self.uid, nsp=request.nsp))

    def _apply_room(self, sid: str, namespace: str, room: str,
                    join: bool) -> None:
        """A room operation of another server on a local socket."""
        if join:
            self.basic_enter_room(sid, namespace, room)
        else:
            self.basic_leave_room(sid, namespace, room)

    def _disconnect_local(self, sid: str, eio_sid: str, namespace: str,
                          close: bool) -> Steps[None]:
        if close:
            self._close_connection(eio_sid)
        else:
            yield partial(self.server.disconnect, sid, namespace=namespace,
                          ignore_queue=True)

    def _close_connection(self, eio_sid: str) -> None:
        """Close a client's whole connection, in a task of its own:
        engine.io waits for the client's queue to drain, never to be
        done in the reader, where a stuck client would stop the stream."""
        self._runtime.start(self.server.eio.disconnect, eio_sid)
