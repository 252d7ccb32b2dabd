"""Every patch of python-socketio's private ``Server`` and
``AsyncServer`` methods, in one place: what the manager needs to see that
python-socketio gives no manager. ``tests/test_python_socketio_internals.py``
fails, naming the method, on a release where one of them changed.

Each patch is written once, as steps (see :mod:`.steps`), and installed
as a plain function or a coroutine function by the manager's runtime
(``runtime.function``). The manager passed in offers ``sockets``
(:class:`LocalSockets`), ``sid_from_eio_sid``, ``close``,
``_take_session`` and ``_runtime``.

``instrument()`` (the Admin UI) is wrapped too, as a plain function in
both worlds: it hands the instrumentation to :mod:`.admin`.
"""
from __future__ import annotations

import functools
from functools import partial
from typing import Any, Callable

from socketio import packet as sio_packet

from . import admin

#: (attribute of ``socketio.Server`` and ``socketio.AsyncServer``, its
#: parameters after self) patched
PATCHED = [
    ('_handle_connect', ['eio_sid', 'namespace', 'data']),
    ('_send_packet', ['eio_sid', 'pkt']),
    ('_handle_disconnect', ['eio_sid', 'namespace', 'reason']),
    ('shutdown', []),
    ('instrument', ['auth', 'mode', 'read_only', 'server_id', 'namespace',
                    'server_stats_interval']),
]


def install(server: Any, mgr: Any, recovery: bool) -> None:
    """Patch ``server`` for ``mgr`` (the recovery hooks only if
    connection state recovery is on)."""
    _hook_shutdown(server, mgr)
    _hook_instrument(server, mgr)
    _hook_connect(server, mgr, recovery)
    if recovery:
        _hook_send_packet(server, mgr)
        _hook_disconnect(server, mgr)


def _patch(server: Any, mgr: Any, name: str,
           steps: Callable[..., Any]) -> None:
    """Replace ``server.<name>`` by ``steps`` driven in the manager's
    world."""
    original = getattr(server, name)
    setattr(server, name, functools.wraps(original)(
        mgr._runtime.function(steps)))


def _hook_shutdown(server: Any, mgr: Any) -> None:
    """Why: ``server.shutdown()`` must close the manager too, so that its
    tasks do not outlive the server; python-socketio gives its manager no
    hook for it."""
    original = server.shutdown

    def shutdown(*args, **kwargs):
        try:
            return (yield partial(original, *args, **kwargs))
        finally:
            yield partial(mgr.close)

    _patch(server, mgr, 'shutdown', shutdown)


def _hook_instrument(server: Any, mgr: Any) -> None:
    """Why: python-socketio's Admin UI instrumentation lists and acts on
    this server's sockets only; its admin namespace handlers are replaced
    by the cluster's (:class:`.admin.ClusterAdmin`)."""
    original = server.instrument

    @functools.wraps(original)
    def instrument(*args, **kwargs):
        instrumented = original(*args, **kwargs)
        admin.ClusterAdmin(instrumented, mgr).register()
        return instrumented

    server.instrument = instrument


def _hook_connect(server: Any, mgr: Any, recovery: bool) -> None:
    """Why: ``Manager.pre_connect`` does not get the CONNECT packet's
    auth, which ``fetch_sockets`` reports (as Node does) and in which a
    client asks for recovery (``pid``, ``offset``). The session is taken
    from Redis here, before python-socketio chooses the sid."""
    original = server._handle_connect

    def handle_connect(eio_sid, namespace, data):
        with mgr.sockets.handshake(eio_sid, namespace or '/',
                                   data) as handshake:
            if recovery and isinstance(data, dict) and 'pid' in data:
                handshake.session = yield from mgr._take_session(
                    data.get('pid'), data.get('offset'), namespace or '/')
            return (yield partial(original, eio_sid, namespace, data))

    _patch(server, mgr, '_handle_connect', handle_connect)


def _hook_send_packet(server: Any, mgr: Any) -> None:
    """Why: the CONNECT reply must carry the socket's ``pid`` for
    recovery, and python-socketio writes it (``{'sid': sid}``) itself."""
    original = server._send_packet

    def send_packet(eio_sid, pkt):
        if pkt.packet_type == sio_packet.CONNECT and isinstance(
                pkt.data, dict) and 'sid' in pkt.data:
            sock = mgr.sockets.get(pkt.namespace or '/', pkt.data['sid'])
            if sock is not None and sock.pid is not None:
                pkt.data = {**pkt.data, 'pid': sock.pid}
        return (yield partial(original, eio_sid, pkt))

    _patch(server, mgr, '_send_packet', send_packet)


def _hook_disconnect(server: Any, mgr: Any) -> None:
    """Why: ``Manager.disconnect`` is not told the reason, and only a
    connection lost (not one closed on purpose) keeps its session."""
    original = server._handle_disconnect

    def handle_disconnect(eio_sid, namespace, reason=None):
        ns = namespace or '/'
        sock = mgr.sockets.get(ns, mgr.sid_from_eio_sid(eio_sid, ns))
        if sock is not None:
            sock.reason = reason
        try:
            return (yield partial(original, eio_sid, namespace, reason))
        finally:
            if sock is not None:
                sock.reason = None

    _patch(server, mgr, '_handle_disconnect', handle_disconnect)
