"""The python-socketio and python-engineio internals the manager relies on.

``RedisStreamsManager`` wraps private methods of ``socketio.Server``
(``socketio_streams.server_hooks.PATCHED``: ``_handle_connect``,
``_send_packet``, ``_handle_disconnect``, ``shutdown``), calls
others (``_send_eio_packet``, ``Manager._generate_ack_id``) and overrides
manager hooks that only recent releases call (``pre_connect``, added with
``is_pre_connected`` in python-socketio 5.18.0). A release that renames or
reshapes one of them fails here, naming it, instead of misbehaving.

For the Admin UI, ``socketio_streams.admin.ClusterAdmin`` replaces the
admin namespace's handlers of python-socketio's ``InstrumentedServer`` and
``InstrumentedAsyncServer`` (taking their arguments, announcing their
features) and reads their attributes and ``serialize_socket``.
"""
import inspect
from importlib.metadata import version

import engineio
import pytest
import socketio
from socketio.admin import InstrumentedServer
from socketio.async_admin import InstrumentedAsyncServer

from socketio_streams import admin, server_hooks

from .asyncmode import ASYNC_MODE
from .test_admin import instrument

INSTRUMENTED = (InstrumentedServer, InstrumentedAsyncServer)
#: the admin namespace's handlers (event: method), ClusterAdmin's in place
#: of all but ``emit``
ADMIN_HANDLERS = {'connect': 'admin_connect', 'emit': 'admin_emit',
                  'join': 'admin_enter_room', 'leave': 'admin_leave_room',
                  '_disconnect': 'admin_disconnect'}

#: (owner, attribute, its parameters after self, as the manager calls it)
METHODS = [
    *((socketio.Server, name, params)
      for name, params in server_hooks.PATCHED),
    (socketio.Server, '_send_eio_packet', ['eio_sid', 'eio_pkt']),
    (socketio.Server, 'disconnect', ['sid', 'namespace', 'ignore_queue']),
    (socketio.Server, 'get_session', ['sid', 'namespace']),
    (socketio.Manager, 'pre_connect', ['eio_sid', 'namespace']),
    (socketio.Manager, 'is_pre_connected', ['sid', 'namespace']),
    (socketio.Manager, 'connect', ['sid', 'namespace']),
    (socketio.Manager, 'basic_enter_room',
     ['sid', 'namespace', 'room', 'eio_sid']),
    (socketio.Manager, '_generate_ack_id', ['sid', 'callback']),
    (socketio.Manager, 'eio_sid_from_sid', ['sid', 'namespace']),
    (socketio.Manager, 'get_participants', ['namespace', 'room']),
    (socketio.Manager, 'is_connected', ['sid', 'namespace']),
    (socketio.Manager, 'enter_room', ['sid', 'namespace', 'room',
                                      'eio_sid']),
    (socketio.Manager, 'leave_room', ['sid', 'namespace', 'room']),
    (socketio.Manager, 'close_room', ['room', 'namespace']),
    (socketio.Manager, 'can_disconnect', ['sid', 'namespace']),
    (engineio.Server, 'generate_id', []),
    (engineio.Server, 'get_session', ['sid']),
    (engineio.Server, 'disconnect', ['sid']),
    (socketio.AsyncServer, 'instrument', dict(server_hooks.PATCHED)[
        'instrument']),
    *((cls, name, params) for cls in INSTRUMENTED for name, params in [
        ('admin_connect', ['sid', 'environ', 'client_auth']),
        ('admin_emit', ['_', 'namespace', 'room_filter', 'event', 'data']),
        ('admin_enter_room', ['_', 'namespace', 'room', 'room_filter']),
        ('admin_leave_room', ['_', 'namespace', 'room', 'room_filter']),
        ('admin_disconnect', ['_', 'namespace', 'close', 'room_filter']),
        ('serialize_socket', ['sid', 'namespace', 'eio_sid'])]),
]

#: instance attributes the manager reads or fills: (owner, attribute)
ATTRIBUTES = [
    (socketio.Server, 'packet_class'),
    (socketio.Server, 'environ'),
    (socketio.Server, 'eio'),
    (socketio.Manager, 'pending_connect'),
    (socketio.Manager, 'rooms'),
    (socketio.Manager, 'callbacks'),
]

#: attributes of an instrumented server ClusterAdmin reads
INSTRUMENTED_ATTRIBUTES = ['sio', 'auth', 'mode', 'read_only',
                           'admin_namespace', 'server_id']

RELEASES = (f"python-socketio {version('python-socketio')}, "
            f"python-engineio {version('python-engineio')}")


def _name(owner: type, attribute: str) -> str:
    return f'{owner.__module__.split(".")[0]}.{owner.__name__}.{attribute}'


@pytest.mark.parametrize('owner, attribute, params', METHODS,
                         ids=[_name(o, a) for o, a, _ in METHODS])
def test_a_method_the_manager_uses_is_there_as_it_expects(owner, attribute,
                                                          params):
    method = getattr(owner, attribute, None)
    assert callable(method), \
        f'{_name(owner, attribute)} is gone in {RELEASES}'
    found = list(inspect.signature(method).parameters)[1:]
    assert found == params, (
        f'{_name(owner, attribute)} takes ({", ".join(found)}) in '
        f'{RELEASES}, the manager calls it with ({", ".join(params)})')


@pytest.mark.parametrize('owner, attribute', ATTRIBUTES,
                         ids=[_name(o, a) for o, a in ATTRIBUTES])
def test_an_attribute_the_manager_uses_is_there(owner, attribute):
    made = socketio.Server(async_mode=ASYNC_MODE) \
        if owner is socketio.Server else owner()
    assert hasattr(made, attribute), \
        f'{_name(owner, attribute)} is gone in {RELEASES}'


def test_the_server_calls_the_managers_pre_connect():
    """python-socketio before 5.18.0 never called ``pre_connect``: a
    namespace first seen at a connection went unwatched."""
    calls = []

    class Recording(socketio.Manager):
        def pre_connect(self, eio_sid, namespace):
            calls.append((eio_sid, namespace))
            return super().pre_connect(eio_sid, namespace)

    server = socketio.Server(client_manager=Recording(),
                             async_mode=ASYNC_MODE)
    server._handle_eio_connect('eio-sid', {})
    server._handle_connect('eio-sid', '/', None)
    assert calls == [('eio-sid', '/')], \
        f'socketio.Server does not call Manager.pre_connect in {RELEASES}'


def test_the_hooks_patch_only_what_they_list():
    """``server_hooks.PATCHED`` is the whole list: what this test file
    checks is all the manager replaces on a server."""
    from socketio_streams import RedisStreamsManager
    mgr = RedisStreamsManager('redis://127.0.0.1:1/0',
                              connection_state_recovery=True)
    server = socketio.Server(client_manager=mgr, async_mode=ASYNC_MODE)
    try:
        replaced = {name for name, value in vars(server).items()
                    if callable(value) and hasattr(socketio.Server, name)}
        assert replaced == {name for name, _ in server_hooks.PATCHED}
    finally:
        mgr.close()


@pytest.mark.parametrize('server_class', [socketio.Server,
                                          socketio.AsyncServer])
def test_the_admin_ui_instrumentation_is_as_the_cluster_admin_expects(
        server_class):
    """What ``instrument()`` registers in the admin namespace (the
    handlers ClusterAdmin replaces), the attributes it reads, and the
    features python-socketio announces (ClusterAdmin announces them
    too)."""
    options = {'async_mode': ASYNC_MODE} \
        if server_class is socketio.Server else {}
    server = server_class(**options)
    made = instrument(server, auth=False, namespace='/watch')
    name = type(made).__name__
    missing = [a for a in INSTRUMENTED_ATTRIBUTES if not hasattr(made, a)]
    assert not missing, f'{name} has no {missing} in {RELEASES}'
    handlers = {event: getattr(handler, '__name__', None) for event, handler
                in server.handlers.get('/watch', {}).items()}
    assert handlers == ADMIN_HANDLERS, \
        f'{name} registers {handlers} in {RELEASES}'
    source = inspect.getsource(type(made).admin_connect)
    announced = ['AGGREGATED_EVENTS', *admin.ACTIONS, 'ALL_EVENTS']
    assert all(f"'{f}'" in source for f in announced) and \
        "'all_sockets'" in source and "'config'" in source, \
        f'{name}.admin_connect announces other features in {RELEASES}'
