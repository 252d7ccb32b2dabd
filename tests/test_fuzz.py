"""Every decode path, fuzzed: a decoded message or a ProtocolError, never
anything else (no Redis needed)."""
import base64
import json

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_streams import protocol
from socketio_streams.dedup import Dedup
from socketio_streams.protocol import Message, ProtocolError

NAMES = st.sampled_from(['uid', 'nsp', 'type', 'data', 'seq', 'x'])
TEXT = st.one_of(
    st.text(max_size=30), st.binary(max_size=30),
    st.sampled_from(['3', '-3', '--3', '\u00b2', '9' * 5000, '{', '{}',
                     '{"a":' * 1200, '[' * 1200, 'AAAA', '/', '0']),
    st.integers().map(str))
FIELDS = st.dictionaries(st.one_of(NAMES, NAMES.map(str.encode),
                                   st.text(max_size=5)),
                         TEXT, max_size=7)
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
              st.text(max_size=10), st.binary(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8),
                                  st.sampled_from(['packet', 'opts', 'rooms',
                                                   'except', 'flags', 'data',
                                                   'type', 'requestId'])),
                        children, max_size=4)),
    max_leaves=20)


def _pack(obj):
    """msgpack of ``obj``; what msgpack cannot pack (a huge int) as raw
    garbage instead."""
    try:
        return msgpack.packb(obj)
    except (TypeError, ValueError, OverflowError):
        return b'\xc1'


def _decodes_or_refuses(func, *args):
    try:
        return func(*args)
    except ProtocolError:
        return None


@settings(max_examples=200, deadline=None)
@given(FIELDS)
def test_stream_entries(fields):
    message = _decodes_or_refuses(protocol.decode_entry, fields)
    assert message is None or isinstance(message, Message)
    if message is not None:
        for parse in (protocol.parse_opts, protocol.parse_event,
                      protocol.parse_rooms, protocol.request_id):
            _decodes_or_refuses(parse, message.data)


@settings(max_examples=150, deadline=None)
@given(JSONISH, st.booleans())
def test_stream_entry_payloads(data, as_msgpack):
    try:
        raw = base64.b64encode(msgpack.packb(data)).decode() if as_msgpack \
            else json.dumps({'d': data}, default=repr)
    except (TypeError, ValueError, OverflowError):
        return
    fields = {b'uid': b'u', b'nsp': b'/', b'type': b'3', b'data': raw}
    message = _decodes_or_refuses(protocol.decode_entry, fields)
    if message is not None:
        for parse in (protocol.parse_opts, protocol.parse_event,
                      protocol.parse_rooms, protocol.request_id):
            _decodes_or_refuses(parse, message.data)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=60), JSONISH.map(
    _pack), st.fixed_dictionaries(
        {'type': st.one_of(st.integers(), st.text(max_size=3)),
         'uid': TEXT, 'nsp': TEXT, 'data': JSONISH}).map(
        _pack)))
def test_pubsub_payloads(payload):
    message = _decodes_or_refuses(protocol.decode_pubsub, payload)
    assert message is None or isinstance(message, Message)


@settings(max_examples=200, deadline=None)
@given(st.one_of(TEXT, JSONISH.map(
    lambda d: base64.b64encode(_pack(d)))))
def test_stored_sessions(value):
    session = _decodes_or_refuses(protocol.decode_session, value)
    assert session is None or isinstance(session['rooms'], list)


def test_deep_nesting_is_a_protocol_error():
    for raw in ('{"a":' * 100_000, '{"a":' + '[' * 100_000):
        fields = {'uid': 'u', 'nsp': '/', 'type': '3', 'data': raw}
        try:
            protocol.decode_entry(fields)
        except ProtocolError:
            continue
        raise AssertionError('decoded a deeply nested payload')


@given(st.lists(st.tuples(st.sampled_from(['a', 'b']),
                          st.integers(0, 50), st.binary(max_size=2)),
                max_size=200))
def test_dedup_drops_exact_copies_only(entries):
    dedup, seen = Dedup(size=1000), set()
    for uid, seq, data in entries:
        assert dedup.is_copy('s', uid, seq, data) == ((uid, seq, data)
                                                      in seen)
        seen.add((uid, seq, data))
    assert not dedup.is_copy('s', 'a', None, b'')  # Node's: no seq


def test_dedup_is_bounded():
    dedup = Dedup(size=10)
    for seq in range(100):
        dedup.is_copy('s', 'u', seq, b'')
    assert len(dedup) == 10
    assert not dedup.is_copy('s', 'u', 0, b'')  # long forgotten
