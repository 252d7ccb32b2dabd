"""The one-pass path of plain BROADCAST entries (:mod:`socketio_streams.
plain`) against the general one, without Redis: the same entries as
redis-py returns them (bytes: the one-pass path) and as a client with
``decode_responses`` does (str: the general path) give the same packets
to the same sockets, the same counters and the same log lines."""
import inspect
import json
import logging

import pytest
import socketio

from socketio_streams import RedisStreamsManager, handlers, plain, protocol
from socketio_streams.steps import run

from .asyncmode import ASYNC_MODE

OPTS = '"opts":{"rooms":%s,"except":%s,"flags":%s}'


def data(event='["e",1]', rooms='[]', except_rooms='[]', flags='{}',
         packet_type=2, extra=''):
    return ('{"packet":{"type":%d,"data":%s}%s,' % (packet_type, event, extra)
            + OPTS % (rooms, except_rooms, flags) + '}')


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def receiver(name, recovery=None):
    """A manager (never connected to Redis) with sockets in rooms, what
    its sockets were sent, and its log lines."""
    log = logging.getLogger(f'test_plain.{name}')
    log.propagate = False
    lines = Lines()
    log.handlers = [lines]
    mgr = RedisStreamsManager('redis://127.0.0.1:1/0', logger=log,
                              write_only=True,  # (nothing read)
                              connection_state_recovery=recovery)
    sio = socketio.Server(client_manager=mgr, async_mode=ASYNC_MODE)
    sent = []
    sio._send_eio_packet = lambda eio_sid, pkt: sent.append(
        (eio_sid, pkt.encode()))
    one, two = mgr.connect('eio1', '/'), mgr.connect('eio2', '/')
    mgr.connect('eio3', '/chat')
    mgr.enter_room(one, '/', 'a')
    mgr.enter_room(two, '/', 'a')
    mgr.enter_room(two, '/', 'b')
    return mgr, handlers.Inbound(handlers.Local(mgr)), sent, lines.lines


def fields(raw, uid='other', nsp='/', seq='1', type_='3'):
    entry = {'uid': uid, 'nsp': nsp, 'type': type_, 'data': raw}
    if seq is not None:
        entry['seq'] = seq
    return entry


def as_bytes(entry):
    return {k.encode(): v if isinstance(v, bytes) else v.encode()
            for k, v in entry.items()}


ENTRIES = [
    fields(data()),
    fields(data(rooms='["a"]'), seq='2'),
    fields(data(rooms='["b"]'), seq='3'),
    fields(data(rooms='["nowhere"]'), seq='4'),
    fields(data(rooms='["nowhere","b"]'), seq='5'),
    fields(data(except_rooms='["b"]'), seq='6'),
    fields(data(rooms='["a"]', except_rooms='["a"]'), seq='7'),
    fields(data(flags='{"volatile":true}'), seq='8'),
    fields(data(), nsp='/chat', seq='9'),
    fields(data(), nsp='/none', seq='10'),
    fields(data(rooms='["nowhere"]'), seq=None),  # Node's: no seq
    fields(data(), seq='1'),  # a copy
    fields(data(rooms='["nowhere"]'), seq='4'),  # a copy, for nobody here
    fields(data(), uid=''),  # no uid
    fields(data(), nsp=''),  # no nsp
    fields(data(), seq='x'),  # a seq that is not one
    fields(data(event='["e",{"opts":{"rooms":["nowhere"]}}]'), seq='11'),
    fields('{"packet":{"type":2,"data":["e",{"opts":{"rooms":["nowhere"],'
           '"except":[],"flags":{}}}]}}', seq='12'),  # no opts of its own
    fields('{"opts":{"rooms":["a"],"except":[],"flags":{}}}', seq='13'),
    fields('{"a\\"opts":{"rooms":["a"],"except":[],"flags":{}}}',
           seq='14'),
    fields('{"packet": {"type": 2, "data": ["e"]}, "opts": {"rooms": [], '
           '"except": [], "flags": {}}}', seq='15'),  # spaces
    fields(data() + ' ', seq='16'),  # trailing space
    fields(data(rooms='[1]'), seq='17'),
    fields(data(rooms='["nowhere"]', flags='[]'), seq='18'),
    fields(data(packet_type=3), seq='19'),
    fields(data(event='[]'), seq='20'),
    fields(data(event='["e",1'), seq='21'),  # not JSON
    fields(data(extra=',"packet":{"type":2,"data":["f"]}'), seq='22'),
    fields(data(event='["e","\\u00e9\\ud800"]'), seq='23'),
    fields(data(event='["é",{"x":NaN}]'), seq='24'),
    fields(data(), seq='25', type_='03'),
    fields(protocol.encode_entry(protocol.Message(
        3, protocol.broadcast_data(['b', b'\x00'], protocol.make_opts()),
        'other', '/'))['data'], seq='26'),  # binary: msgpack
    # to everyone, the opts not decoded: what comes before them is
    fields('{"opts":{"rooms":[],"except":[],"flags":{}}}', seq='27'),
    fields('x"opts":{"rooms":[],"except":[],"flags":{}}}', seq='28'),
    fields('{"packet":{"type":2,"data":["e"]}"opts":{"rooms":[],'
           '"except":[],"flags":{}}}', seq='29'),
    fields(data(event='["e",1]}'), seq='30'),
    fields(data(rooms='["nowhere"]', extra=',"requestId":"r"'), seq='31'),
]


def feed(inbound, entries):
    for n, entry in enumerate(entries):
        steps = inbound.on_entry('socket.io', f'1-{n}', entry)
        if steps is not None:
            assert inspect.isgenerator(steps)
            if 'requestId' not in str(protocol.raw_field(entry, 'data')):
                run(steps)  # (answers to a request need Redis)


@pytest.mark.parametrize('recovery', [None, True])
def test_both_paths_send_count_and_log_the_same(recovery):
    """With recovery on, the packets carry their offset (none if
    volatile)."""
    one_pass = receiver('bytes', recovery)
    general = receiver('str', recovery)
    feed(one_pass[1], [as_bytes(e) for e in ENTRIES])
    feed(general[1], ENTRIES)
    mgr, _, sent, lines = one_pass
    assert sent == general[2]
    assert lines == general[3]
    assert mgr.stats() == general[0].stats()
    assert len(sent) > 10 and any('skipping' in line for line in lines)
    assert mgr.stats()['duplicates'] == 2


def test_plain_entries_take_the_one_pass_path():
    plain_entries = [as_bytes(e) for e in ENTRIES[:11]]
    assert all(plain.fields(e) is not None for e in plain_entries)
    assert plain.fields(ENTRIES[0]) is None  # str: the general path
    assert plain.fields(as_bytes(ENTRIES[-1])) is None  # requestId


@pytest.mark.parametrize('rooms', ['["nowhere"]', '[]'])
def test_a_spelt_out_request_id_is_not_taken_for_nobody_here(rooms):
    """Nor for a plain broadcast to everyone (its opts, not decoded)."""
    entry = as_bytes(fields(data(rooms=rooms,
                                 extra=',"\\u0072equestId":"r"')))
    _, inbound, _, _ = receiver('request')
    assert plain.tail_opts(entry[b'data']) is None
    assert inspect.isgenerator(inbound.on_entry('socket.io', '1-0', entry))


@pytest.mark.parametrize('raw', [b'{"packet":\xff}', b'{\xff"opts":1}'])
def test_data_not_utf8_is_a_logged_skip(raw):
    mgr, inbound, sent, lines = receiver('utf8')
    entry = as_bytes(fields(data()))
    entry[b'data'] = raw + b',"opts":{"rooms":[],"except":[],"flags":{}}}'
    assert inbound.on_entry('socket.io', '1-0', entry) is None
    assert mgr.stats()['skipped'] == 1 and not sent
    assert len(lines) == 1 and 'not UTF-8' in lines[0]


def test_tail_opts_are_those_decoding_gives():
    for entry in ENTRIES:
        raw = entry['data'].encode()
        tail = plain.tail_opts(raw)
        if tail is None:
            continue
        try:
            decoded = json.loads(raw)
        except ValueError:  # read neither way
            assert plain.broadcast(raw, tail) is plain.broadcast(raw) is None
        else:
            assert tail[1] == protocol.parse_opts(decoded)
            with_tail, whole = plain.broadcast(raw, tail), \
                plain.broadcast(raw)
            assert (with_tail and with_tail[:4]) == (whole and whole[:4])


def test_bad_data_for_rooms_with_no_local_socket_is_not_read():
    """As an entry of a namespace with no local socket is not."""
    mgr, inbound, sent, lines = receiver('unread')
    for rooms, skipped in (('["nowhere"]', 0), ('["a"]', 1)):
        entry = as_bytes(fields(data(event='["e",1', rooms=rooms)))
        assert inbound.on_entry('socket.io', '1-0', entry) is None
        assert mgr.stats()['skipped'] == skipped


# --- the write side: an emit's JSON made once --------------------------------

EVENTS = [['e'], ['e', 1, 2.5, None, True],
          ['e', {'seq': 1, 'pad': 'x' * 100}],
          ['é', {'日本': ['\u2028', '"\\', '\x00']}], ['e', {1: 'int key'}],
          ['e', [[], {}, -0.0, 1e300, 10 ** 30]]]


@pytest.mark.parametrize('event_data', EVENTS)
@pytest.mark.parametrize('rooms', [[], ['r', 'ü']])
def test_an_emit_writes_the_entry_and_packet_of_the_general_path(
        event_data, rooms):
    """The event's JSON made once (``event_json``) gives the entry's
    ``data`` that encoding it all gives, and the packets python-socketio
    makes."""
    from socketio_streams import delivery
    from socketio_streams.codec import _dumps_plain

    opts = protocol.make_opts(rooms, ['x'])
    text = plain.event_json(event_data)
    assert plain.broadcast_data(text, opts) == \
        _dumps_plain(protocol.broadcast_data(event_data, opts))
    packet = socketio.packet.Packet
    mgr = RedisStreamsManager('redis://127.0.0.1:1/0', write_only=True)
    for nsp in ('/', '/chat'):
        # the entry's fields, made directly: those, in the order, that
        # encode_entry gives
        data = plain.broadcast_data(text, opts)
        fields = mgr._links.broadcast_entry(nsp, data)
        assert list(fields.items()) == list(mgr._links.entry(
            nsp, protocol.MessageType.BROADCAST, None, data).items())
        made = delivery.encode(packet, nsp, event_data, True, text)
        expected = packet(socketio.packet.EVENT, namespace=nsp,
                          data=event_data).encode()
        assert [p.data for p in made] == [expected]


@pytest.mark.parametrize('event_data', [['e', b'\x00'], ['e', float('nan')],
                                        ['e', object()]])
def test_data_json_does_not_carry_as_it_is_takes_the_general_path(event_data):
    assert plain.event_json(event_data) is None


def test_the_options_of_a_broadcast_to_everyone_are_those_json_writes():
    from socketio_streams.codec import _dumps
    assert plain._NO_OPTS == _dumps(protocol.make_opts())


def test_clients_get_the_event_json_as_the_entry_holds_it():
    """ASCII: as it is (what a Node server sends its own clients; for our
    entries, what python-socketio makes of the data); else made again as
    python-socketio makes it. With recovery, the offset is appended."""
    for recovery, offsets in ((None, ('', '')), (True, (',"1-0"', ',"1-1"'))):
        mgr, inbound, sent, _ = receiver('text', recovery)
        feed(inbound, [as_bytes(fields(data(event='["e",1e-7,[1.5E3]]'))),
                       as_bytes(fields(data(event='["é"]'), seq='2'))])
        assert {pkt for _, pkt in sent} == {
            f'42["e",1e-7,[1.5E3]{offsets[0]}]',
            f'42["\\u00e9"{offsets[1]}]'}
