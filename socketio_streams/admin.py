"""The Socket.IO Admin UI across the cluster.

python-socketio's ``sio.instrument()`` (``socketio.admin.InstrumentedServer``
and ``socketio.async_admin.InstrumentedAsyncServer``) lists to an admin only
the sockets of its own server, and its join, leave and disconnect act on
those only. On a server whose manager is ours, ``server_hooks`` wraps
``instrument()``, and :class:`ClusterAdmin` replaces four handlers of the
admin namespace: ``connect`` (the sockets it lists come from
``fetch_sockets``), ``join``, ``leave`` and ``_disconnect`` (through
``sockets_join``, ``sockets_leave`` and ``disconnect_sockets``), as Node's
``@socket.io/admin-ui`` does. The rest is python-socketio's: what it reports
(``server_stats``, connections, rooms, events) it emits in the admin
namespace, through the manager, to the admins of every server; each server
is named by the manager's ``host_id``.

Each handler is written once, as steps (see :mod:`.steps`), and given to
python-socketio as a plain or a coroutine function by the manager's
runtime.
"""
from __future__ import annotations

import os
import weakref
from functools import partial
from typing import Any

from socketio.exceptions import ConnectionRefusedError

from .exceptions import AckTimeoutError
from .steps import Steps

#: what the UI is told it may do (python-socketio's list)
ACTIONS = ['EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'MJOIN', 'MLEAVE',
           'MDISCONNECT']
#: what Node's admin-ui shows of a handshake (not ``auth``)
HANDSHAKE = ('address', 'headers', 'query', 'issued', 'secure', 'time',
             'url', 'xdomain')


class ClusterAdmin:
    """The admin namespace's handlers for the whole cluster, for
    ``instrumented`` (what ``sio.instrument()`` returned), whose ``sio``,
    ``auth``, ``mode``, ``read_only``, ``admin_namespace``, ``server_id``,
    ``admin_emit`` and ``serialize_socket`` it uses (checked by
    ``tests/test_python_socketio_internals.py``)."""

    def __init__(self, instrumented: Any, mgr: Any):
        self.instrumented = instrumented
        self.mgr = mgr

    def register(self) -> None:
        """Replace python-socketio's handlers by these. The actions are
        handled whenever the UI is told it may use them (python-socketio
        leaves them out in production mode, Node does not)."""
        admin = self.instrumented
        function = self.mgr._runtime.function

        def on(event: str, handler: Any) -> None:
            admin.sio.on(event, handler, namespace=admin.admin_namespace)

        if admin.server_id == self.mgr.host_id:  # no name of the user's
            _follow_forks(self)
        on('connect', function(self.connect))
        if not admin.read_only:
            on('emit', admin.admin_emit)  # a broadcast: cluster-wide
            on('join', function(self.join))
            on('leave', function(self.leave))
            on('_disconnect', function(self.disconnect))

    def connect(self, sid: str, environ: dict,
                client_auth: Any = None) -> Steps[None]:
        """python-socketio's ``admin_connect``: check the credentials,
        then send the config and the sockets of every server (to this
        admin: python-socketio's loop reuses the name ``sid``, and sends
        them to the last socket it listed)."""
        if not (yield from self._authenticated(client_auth)):
            raise ConnectionRefusedError('authentication failed')
        self.mgr._runtime.spawn(self._welcome(sid))

    def _authenticated(self, client_auth: Any) -> Steps[bool]:
        auth = self.instrumented.auth
        if not auth:
            return True
        if isinstance(auth, dict):
            return client_auth == auth
        if isinstance(auth, list):
            return client_auth in auth
        return bool((yield partial(auth, client_auth)))  # may be async

    def _welcome(self, sid: str) -> Steps[None]:
        admin = self.instrumented
        emit = partial(admin.sio.emit, to=sid,
                       namespace=admin.admin_namespace)
        # as python-socketio does: the CONNECT reply goes first
        yield partial(self.mgr._runtime.sleep, 0.1)
        features = ['AGGREGATED_EVENTS']
        if not admin.read_only:
            features += ACTIONS
        if admin.mode == 'development':
            features.append('ALL_EVENTS')
        yield partial(emit, 'config', {'supportedFeatures': features})
        if admin.mode == 'development':
            yield partial(emit, 'all_sockets',
                          (yield from self.all_sockets()))

    def all_sockets(self) -> Steps[list[dict]]:
        """Every socket of every server, as the UI shows them: those of
        this server as python-socketio serializes them, the others from
        what ``fetch_sockets`` tells of them (see :func:`serialize`)."""
        mgr = self.mgr
        result = []
        for namespace in sorted(set(mgr.get_namespaces()) |
                                mgr._known_namespaces()):
            try:
                found = yield partial(mgr.fetch_sockets, namespace=namespace)
            except AckTimeoutError as exc:  # a server did not answer
                mgr._log.warning('Admin UI: %s', exc)
                found = exc.responses
            except RuntimeError:
                if not mgr._closed:
                    raise
                # a closed manager is local: this server's, as
                # python-socketio lists them
                local = (self._local(sid, namespace, eio_sid) for
                         sid, eio_sid in mgr.get_participants(namespace,
                                                              None))
                result += [sock for sock in local if sock]
                continue
            result += [self._serialize(sock, namespace) for sock in found]
        return result

    def _serialize(self, sock: Any, namespace: str) -> dict:
        eio_sid = self.mgr.eio_sid_from_sid(sock.sid, namespace)
        local = self._local(sock.sid, namespace, eio_sid) \
            if eio_sid is not None else None
        return local or serialize(sock, namespace)

    def _local(self, sid: str, namespace: str, eio_sid: str) -> dict | None:
        try:
            return self.instrumented.serialize_socket(sid, namespace, eio_sid)
        except KeyError:  # its connection has just closed
            return None

    def join(self, _: str, namespace: str, room: str,
             room_filter: Any = None) -> Steps[None]:
        """The sockets matching ``room_filter`` (a room, a socket id;
        None: all) on every server join ``room``."""
        yield partial(self.mgr.sockets_join, room, to=room_filter,
                      namespace=namespace)

    def leave(self, _: str, namespace: str, room: str,
              room_filter: Any = None) -> Steps[None]:
        yield partial(self.mgr.sockets_leave, room, to=room_filter,
                      namespace=namespace)

    def disconnect(self, _: str, namespace: str, close: Any,
                   room_filter: Any = None) -> Steps[None]:
        """``close``: their whole connection (as Node does; python-socketio
        disconnects the namespace only)."""
        yield partial(self.mgr.disconnect_sockets, to=room_filter,
                      close=bool(close), namespace=namespace)


#: the instrumented servers named by their manager's ``host_id``
_named_by_manager: weakref.WeakSet = weakref.WeakSet()
_forks_followed = False


def _follow_forks(cluster_admin: ClusterAdmin) -> None:
    """python-socketio names a server once, at ``instrument()``: in a
    child of ``fork()`` (gunicorn ``--preload``) it takes the new
    ``host_id`` of its manager, not to report as its parent. Registered
    at the first use: after ``core._after_fork``, which renews the
    managers' identities (at-fork callbacks run in their order)."""
    global _forks_followed
    if not _forks_followed:
        os.register_at_fork(after_in_child=_after_fork)
        _forks_followed = True
    _named_by_manager.add(cluster_admin)


def _after_fork() -> None:
    for cluster_admin in list(_named_by_manager):
        cluster_admin.instrumented.server_id = cluster_admin.mgr.host_id


def serialize(sock: Any, namespace: str) -> dict:
    """A socket of another server (a ``RemoteSocket``) as Node's admin-ui
    serializes one: its client id and transport are what Node's admin-ui
    keeps in the socket's data (``_admin``); python-socketio keeps them
    nowhere another server can see, so the socket id stands for the
    client and the transport is the one it connected with."""
    data = sock.data if isinstance(sock.data, dict) else {}
    seen = data.get('_admin')
    seen = seen if isinstance(seen, dict) else {}
    handshake = sock.handshake
    query = handshake.get('query') or {}
    return {
        'id': sock.sid,
        'clientId': seen.get('clientId', sock.sid),
        'transport': seen.get('transport',
                              query.get('transport', 'polling')),
        'nsp': namespace,
        'data': {k: v for k, v in data.items() if k != '_admin'},
        'handshake': {k: handshake.get(k) for k in HANDSHAKE},
        'rooms': [sock.sid, *(r for r in sock.rooms if r != sock.sid)],
    }
