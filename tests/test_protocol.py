"""The wire format, checked against bytes a real Node cluster wrote."""
import base64
import json
import pathlib

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from socketio_streams import codec, protocol
from socketio_streams.protocol import Message, MessageType as T, ProtocolError

SAMPLES = pathlib.Path(__file__).parent / 'wire_samples'


def _jsonl(name):
    return [json.loads(line) for line in (SAMPLES / name).open()]


def _raw_fields(sample):
    """An entry's fields as redis-py returns them: bytes -> bytes."""
    return {k.encode(): bytes.fromhex(v['hex'])
            for k, v in sample['fields'].items()}


def _expected(value):
    """Undo the capture's ``{"$bin_hex": ...}`` marker for bytes."""
    if isinstance(value, dict):
        if set(value) == {'$bin_hex'}:
            return bytes.fromhex(value['$bin_hex'])
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


STREAM = _jsonl('stream.jsonl')
PUBSUB = _jsonl('pubsub.jsonl')


@pytest.mark.parametrize('sample', STREAM, ids=lambda s: s['id'])
def test_node_stream_entries_decode_and_reencode_byte_for_byte(sample):
    """Every entry a Node server wrote decodes, and our encoder writes the
    very same bytes back for it."""
    message = protocol.decode_entry(_raw_fields(sample))
    assert message.uid == sample['fields']['uid']['utf8']
    assert message.nsp == sample['fields']['nsp']['utf8']
    assert message.type == int(sample['fields']['type']['utf8'])
    assert message.data == _expected(sample['data_decoded'])
    assert message.seq is None
    fields = protocol.encode_entry(message)
    assert list(fields) == list(sample['fields'])
    assert {k: v.encode() for k, v in fields.items()} == {
        k.decode(): v for k, v in _raw_fields(sample).items()}


@pytest.mark.parametrize('sample', PUBSUB,
                         ids=lambda s: f"{s['step']}-{s['decoded']['type']}")
def test_node_pubsub_payloads_decode_and_reencode_byte_for_byte(sample):
    payload = bytes.fromhex(sample['payload_hex'])
    message = protocol.decode_pubsub(payload)
    decoded = sample['decoded']
    assert (message.type, message.uid, message.nsp) == (
        decoded['type'], decoded['uid'], decoded['nsp'])
    assert message.data == _expected(decoded['data'])
    assert protocol.encode_pubsub(message) == payload


def test_node_session_sample_decodes():
    sample = _jsonl('session.jsonl')[0]
    raw = base64.b64decode(sample['value_utf8'])
    assert msgpack.unpackb(raw, raw=False) == sample['decoded']
    session = protocol.decode_session(sample['value_utf8'])
    assert 'offset' not in session  # Node stores none: no quiet recovery


def test_a_session_carries_its_offset_as_one_more_key():
    value = protocol.encode_session('s', 'p', ['s', 'r'], {'a': 1}, '5-1')
    assert msgpack.unpackb(base64.b64decode(value), raw=False) == {
        'sid': 's', 'pid': 'p', 'rooms': ['s', 'r'], 'data': {'a': 1},
        'offset': '5-1'}
    assert protocol.decode_session(value)['offset'] == '5-1'
    assert 'offset' not in protocol.decode_session(
        protocol.encode_session('s', 'p', [], None))


@pytest.mark.parametrize('offset', ['5', 5, None, '5-1-2', b'5-1'])
def test_a_session_with_a_bad_offset_has_none(offset):
    value = base64.b64encode(msgpack.packb({
        'sid': 's', 'pid': 'p', 'rooms': [], 'offset': offset}))
    assert 'offset' not in protocol.decode_session(value)


def test_binary_broadcast_is_base64_msgpack_with_bin():
    data = protocol.broadcast_data(['ev', b'\x01\x02\x03'],
                                   protocol.make_opts('room1', 'room2'))
    fields = protocol.encode_entry(Message(T.BROADCAST, data,
                                           '64ede562f9919de1', '/'))
    assert fields['data'] == STREAM[1]['fields']['data']['utf8']


def test_only_plaintext_writes_buffers_as_node_json():
    data = protocol.broadcast_data(['ev', b'\x01'], protocol.make_opts())
    fields = protocol.encode_entry(Message(T.BROADCAST, data, 'u', '/'),
                                   only_plaintext=True)
    assert json.loads(fields['data'])['packet']['data'][1] == {
        'type': 'Buffer', 'data': [1]}


def test_seq_field_is_written_last_and_read_back():
    fields = protocol.encode_entry(Message(T.BROADCAST, {'a': 1}, 'u', '/',
                                           seq=7))
    assert list(fields) == ['uid', 'nsp', 'type', 'data', 'seq']
    assert protocol.decode_entry(fields).seq == 7


def test_data_is_omitted_when_empty():
    fields = protocol.encode_entry(Message(T.HEARTBEAT, None, 'u', '/'))
    assert list(fields) == ['uid', 'nsp', 'type']
    assert protocol.decode_entry(fields).data is None


@pytest.mark.parametrize('nsp, key', [
    ('/', 'socket.io-3'), ('/chat', 'socket.io-3'), ('/admin', 'socket.io-0'),
    ('/négatif-namespace', 'socket.io--1'), ('/😀', 'socket.io-2')])
def test_stream_key_matches_node_hash_with_four_streams(nsp, key):
    assert protocol.stream_key('socket.io', 4, nsp) == key


def test_single_stream_key_is_the_name():
    assert protocol.stream_key('s', 1, '/anything') == 's'


def test_channel_names():
    assert protocol.public_channel('socket.io', '/') == 'socket.io#/#'
    assert protocol.private_channel('socket.io', '/chat', 'ab') == \
        'socket.io#/chat#ab#'


def test_offsets():
    assert protocol.next_offset('1795605602466-0') == '1795605602466-1'
    assert protocol.compare_offsets('2-0', '10-0') == -1
    assert protocol.compare_offsets('5-3', '5-3') == 0


@pytest.mark.parametrize('fields, error', [
    ({}, 'no nsp'),
    ({b'uid': b'u', b'type': b'3'}, 'no nsp'),
    ({b'nsp': b'/', b'type': b'3'}, 'no uid'),
    ({b'uid': b'u', b'nsp': b'/', b'type': b'x'}, 'bad type'),
    ({b'uid': b'u', b'nsp': b'/', b'type': b'3', b'data': b'{nope'},
     'invalid JSON'),
    ({b'uid': b'u', b'nsp': b'/', b'type': b'3', b'data': b'!!!'},
     'neither JSON nor base64'),
    ({b'uid': b'u', b'nsp': b'/', b'type': b'3', b'data': b'\xff\xfe'},
     'not UTF-8'),
    ({b'uid': b'u', b'nsp': b'/', b'type': b'3',
      b'data': base64.b64encode(b'\xc1')}, 'invalid msgpack'),
    ({b'uid': b'u', b'nsp': b'/', b'type': b'3',
      b'data': base64.b64encode(msgpack.ExtType(5, b'x').data and
                                msgpack.packb(msgpack.ExtType(5, b'x')))},
     'extension type 5'),
    ([1, 2], 'not a field map'),
])
def test_malformed_entries_raise_a_clear_protocol_error(fields, error):
    with pytest.raises(ProtocolError, match=error):
        protocol.decode_entry(fields)


@pytest.mark.parametrize('payload, error', [
    (b'\xc1', 'invalid msgpack'),
    (msgpack.packb([1, 2]), 'not a map'),
    (msgpack.packb({'type': '3', 'uid': 'u', 'nsp': '/'}), 'bad type'),
    (msgpack.packb({'type': 3, 'nsp': '/'}), 'no uid'),
    ('text', 'not bytes'),
])
def test_malformed_pubsub_payloads_raise_a_clear_protocol_error(
        payload, error):
    with pytest.raises(ProtocolError, match=error):
        protocol.decode_pubsub(payload)


@pytest.mark.parametrize('data', [
    None, {}, {'packet': {'type': 5, 'data': ['x']}},
    {'packet': {'type': 2, 'data': []}}, {'packet': {'type': 2, 'data': [1]}},
    {'packet': {'type': 2, 'data': 'x'}}])
def test_bad_broadcast_packets_are_refused(data):
    with pytest.raises(ProtocolError):
        protocol.parse_event(data)


@pytest.mark.parametrize('data', [
    None, {'opts': []}, {'opts': {'rooms': 'r'}}, {'opts': {'rooms': [1]}},
    {'opts': {'flags': []}}])
def test_bad_opts_are_refused(data):
    with pytest.raises(ProtocolError):
        protocol.parse_opts(data)


def test_unserialisable_data_fails_at_encode_with_type_error():
    message = Message(T.BROADCAST, protocol.broadcast_data(
        ['ev', object()], protocol.make_opts()), 'u', '/')
    with pytest.raises(TypeError):
        protocol.encode_entry(message)


def test_node_dates_in_msgpack_become_iso_text():
    blob = msgpack.packb({'d': msgpack.Timestamp(1795605601, 861000000)},
                         datetime=False)
    fields = {b'uid': b'u', b'nsp': b'/', b'type': b'3',
              b'data': base64.b64encode(blob)}
    assert protocol.decode_entry(fields).data == {
        'd': '2026-11-25T11:20:01.861Z'}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) |
    st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) |
    st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@given(args=st.lists(json_values, max_size=4),
       rooms=st.lists(st.text(min_size=1, max_size=8), max_size=3),
       only_plaintext=st.booleans())
@settings(max_examples=200, deadline=None)
def test_broadcasts_round_trip(args, rooms, only_plaintext):
    data = protocol.broadcast_data(['ev', *args],
                                   protocol.make_opts(rooms, ['x']))
    message = Message(T.BROADCAST, data, 'abc', '/n', seq=3)
    fields = protocol.encode_entry(message, only_plaintext)
    decoded = protocol.decode_entry({k.encode(): v.encode()
                                     for k, v in fields.items()})
    if not only_plaintext or not protocol.has_binary(args):
        assert decoded == message
    assert protocol.decode_pubsub(protocol.encode_pubsub(message)) == message


@given(st.dictionaries(st.binary(max_size=10),
                       st.binary(max_size=60), max_size=6))
@settings(max_examples=300, deadline=None)
def test_decoding_garbage_entries_raises_only_protocol_error(fields):
    try:
        protocol.decode_entry(fields)
    except ProtocolError:
        pass


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_decoding_garbage_payloads_raises_only_protocol_error(payload):
    try:
        protocol.decode_pubsub(payload)
    except ProtocolError:
        pass


def _encode_data_as_before(data, may_be_binary):
    """The ``data`` field as encode_entry wrote it before it tried JSON
    first: a walk for bytes, then msgpack or JSON."""
    if may_be_binary and protocol.has_binary(data):
        return base64.b64encode(codec._pack(data)).decode('ascii')
    return json.dumps(data, separators=(',', ':'), ensure_ascii=False,
                      allow_nan=False, default=codec._buffer_json)


def _outcome(func, *args):
    try:
        return func(*args)
    except Exception as exc:
        return type(exc), str(exc)


any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() |
    st.text(max_size=12) | st.binary(max_size=12) |
    st.binary(max_size=4).map(bytearray) | st.just(set()),
    lambda inner: st.lists(inner, max_size=4) |
    st.lists(inner, max_size=3).map(tuple) |
    st.dictionaries(st.text(max_size=6) | st.integers() |
                    st.binary(max_size=3) | st.none(), inner, max_size=4),
    max_leaves=25)


@given(data=any_values, type_=st.sampled_from(list(T)),
       only_plaintext=st.booleans())
@settings(max_examples=400, deadline=None)
def test_data_is_encoded_as_before_for_every_input(data, type_,
                                                   only_plaintext):
    """Byte for byte (or the same error): binary, nested, unicode, NaN,
    huge ints, keys JSON or msgpack refuse, things neither encodes."""
    may_be_binary = not only_plaintext and type_ in protocol.MAY_CONTAIN_BINARY
    message = Message(type_, data, 'u', '/')
    fields = _outcome(protocol.encode_entry, message, only_plaintext)
    before = _outcome(_encode_data_as_before, data, may_be_binary) \
        if data else None
    assert (fields.get('data') if isinstance(fields, dict) else fields) \
        == before


@pytest.mark.parametrize('data', [
    {'packet': {'type': 2, 'data': ['ev', 'é✓🙂', {'a': [1, None]}]}},
    {'packet': {'type': 2, 'data': ['ev', 1.5, [b'\x00', {'b': b'\xff'}]]}},
    {'nan': [1, float('nan'), b'x']},
    {'big': [2**64, b'x']},
    {b'key': 1, 'v': b'x'},
    {'lone': '\ud800', 'b': b'x'},
])
def test_chosen_data_is_encoded_as_before(data):
    for type_ in (T.BROADCAST, T.SOCKETS_JOIN):
        for only_plaintext in (False, True):
            may = not only_plaintext and type_ in protocol.MAY_CONTAIN_BINARY
            fields = _outcome(protocol.encode_entry, Message(type_, data),
                              only_plaintext)
            assert (fields.get('data') if isinstance(fields, dict)
                    else fields) == _outcome(_encode_data_as_before, data,
                                             may)


@pytest.mark.parametrize('seq, number', [
    ('0', 0), ('12', 12), ('9' * 19, 10 ** 19 - 1), (None, None), ('', None),
    ('1' * 20, None), ('²', None), ('١', None), ('1a', None), (' 1', None),
    ('-1', None), ('+1', None), ('1_0', None)])
def test_a_seq_is_1_to_19_ascii_digits(seq, number):
    assert protocol.seq_number(seq) == number
