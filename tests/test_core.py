"""The parts of the manager that do no I/O, without Redis: recovery's
choice of backlog entries, local delivery's decisions, inbound handlers
through a recording context."""
import pytest
import socketio

from socketio_streams import handlers, protocol
from socketio_streams.dedup import Dedup
from socketio_streams.delivery import Delivery
from socketio_streams.protocol import Message, MessageType as T
from socketio_streams.restore import missed
from socketio_streams.sockets import LocalSockets
from socketio_streams.steps import run

from .asyncmode import ASYNC_MODE


def entry(event_data, rooms=None, flags=None, nsp='/', seq=1, **data):
    """The fields of a BROADCAST stream entry."""
    payload = protocol.broadcast_data(
        event_data, protocol.make_opts(rooms, None, flags))
    message = Message(T.BROADCAST, {**payload, **data}, 'other', nsp, seq)
    return protocol.encode_entry(message, only_plaintext=True)


def test_missed_keeps_what_the_sockets_rooms_would_have_received():
    seen = Dedup()
    assert missed(entry(['a', 1]), '/', ['sid1'], seen) == ['a', 1]
    assert missed(entry(['b'], rooms='r'), '/', ['sid1', 'r'],
                  seen) == ['b']


@pytest.mark.parametrize('fields', [
    entry(['a'], nsp='/other'),
    entry(['a'], rooms='elsewhere'),
    entry(['a'], flags={'volatile': True}),
    entry(['a'], requestId='0123456789abcdef'),
], ids=['namespace', 'room', 'volatile', 'request'])
def test_missed_leaves_out_what_the_socket_would_not_have_had(fields):
    assert missed(fields, '/', ['sid1'], Dedup()) is None


def test_missed_leaves_out_a_copy_and_raises_on_bad_input():
    seen = Dedup()
    assert missed(entry(['a']), '/', [], seen) == ['a']
    assert missed(entry(['a']), '/', [], seen) is None
    with pytest.raises(protocol.ProtocolError):
        missed({'uid': 'x', 'nsp': '/', 'type': 'nope'}, '/', [], seen)


@pytest.fixture
def local():
    """A python-socketio manager with two connected sockets, and the
    delivery decisions over it."""
    mgr = socketio.Manager()
    mgr.set_server(socketio.Server(async_mode=ASYNC_MODE))
    mgr.initialize()
    sids = [mgr.connect(f'eio{n}', '/') for n in (1, 2)]
    mgr.enter_room(sids[1], '/', 'room')
    sockets = LocalSockets()
    return Delivery(mgr, sockets), sockets, sids


def test_plan_matches_rooms_and_encodes_once(local):
    delivery, _sockets, sids = local
    everyone = delivery.plan('/', ['e', 1], [], [])
    assert [eio for eio, _ in everyone] == ['eio1', 'eio2']
    assert everyone[0][1] is everyone[1][1]  # one encoding for all
    assert [eio for eio, _ in delivery.plan('/', ['e'], ['room'], [])] == \
        ['eio2']
    assert [eio for eio, _ in delivery.plan('/', ['e'], [], ['room'])] == \
        ['eio1']
    assert delivery.plan('/other', ['e'], [], []) == []


def test_plan_holds_for_a_restoring_socket_and_release_sends_the_rest(
        local):
    delivery, sockets, sids = local
    sock = sockets.add('/', sids[0])
    sock.restoring = {'offset': '1-0'}
    sent = delivery.plan('/', ['e'], [], [], '2-0', recovery=True)
    assert [eio for eio, _ in sent] == ['eio2']
    delivery.plan('/', ['e'], [], [], '4-0', recovery=True)
    # the replay reached 3-0: 2-0 was in the backlog, 4-0 was not
    assert len(delivery.release(sock, '3-0')) == 1
    assert sock.restoring is None and sock.replayed == '3-0'
    again = delivery.plan('/', ['e'], [], [], '3-0', recovery=True)
    assert [eio for eio, _ in again] == ['eio2']  # nothing twice
    assert delivery.position('/', '1-0') == (4, 0)


def test_plan_skips_a_socket_that_joined_after_the_entry(local):
    delivery, sockets, sids = local
    sockets.add('/', sids[0]).start = (5, 0)
    sent = delivery.plan('/', ['e'], [], [], '5-0', recovery=True)
    assert [eio for eio, _ in sent] == ['eio2']


def test_release_of_a_socket_gone_sends_nothing(local):
    delivery, sockets, sids = local
    sockets.add('/', sids[0]).restoring = {'offset': '1-0'}
    delivery.plan('/', ['e'], [], [], '2-0', recovery=True)
    sock = sockets.remove('/', sids[0])
    assert delivery.release(sock, '1-0') == []


class Recording:
    """A handlers.Context that records what the handlers ask for."""
    uid = 'me'

    def __init__(self, targets=()):
        self.calls = []
        self.found = list(targets)
        self.on = {}

    def targets(self, namespace, rooms, except_rooms):
        return self.found

    def respond(self, request, type_, data):  # steps, with no I/O
        self.calls.append(('respond', type_, data))
        yield from ()

    def event_handler(self, namespace, event):
        return self.on.get(event)

    def disconnect_local(self, sid, eio_sid, namespace, close):
        self.calls.append(('disconnect', sid, close))
        yield from ()

    def apply_room(self, sid, namespace, room, join):
        self.calls.append(('room', sid, room, join))


def test_a_server_side_emit_is_answered_even_without_a_handler():
    ctx = Recording()
    ask = Message(T.SERVER_SIDE_EMIT, {'requestId': 'r1', 'packet': ['x']},
                  'other')
    run(handlers.on_server_side_emit(ctx, ask))
    ctx.on['x'] = lambda *args: 'answer'
    run(handlers.on_server_side_emit(ctx, ask))
    assert ctx.calls == [
        ('respond', T.SERVER_SIDE_EMIT_RESPONSE,
         {'requestId': 'r1', 'packet': None}),
        ('respond', T.SERVER_SIDE_EMIT_RESPONSE,
         {'requestId': 'r1', 'packet': 'answer'})]


def test_room_and_disconnect_operations_apply_to_the_targets():
    ctx = Recording([('s1', 'e1'), ('s2', 'e2')])
    opts = protocol.make_opts()
    handlers.on_sockets_join(ctx, Message(
        T.SOCKETS_JOIN, {'opts': opts, 'rooms': ['r']}))
    run(handlers.on_disconnect_sockets(ctx, Message(
        T.DISCONNECT_SOCKETS, {'opts': opts, 'close': True})))
    assert ctx.calls == [('room', 's1', 'r', True), ('room', 's2', 'r', True),
                         ('disconnect', 's1', True),
                         ('disconnect', 's2', True)]


def test_ack_ttl_follows_the_requests_timeout_within_bounds():
    assert handlers.ack_ttl({'timeout': 5000}) == 6.0
    assert handlers.ack_ttl({'timeout': True}) == handlers.CALLBACK_TTL
    assert handlers.ack_ttl({'timeout': 10 ** 9}) == handlers.CALLBACK_TTL
