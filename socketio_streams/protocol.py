"""The wire format of ``@socket.io/redis-streams-adapter`` 0.3.x; no I/O.

Stream entries carry ``uid``, ``nsp``, ``type`` (a decimal string) and
``data`` (JSON text, or base64 of msgpack when the payload holds bytes).
PUB/SUB payloads are the whole message as raw msgpack. See WIRE.md.

We add one optional field to stream entries, ``seq``: a per-sender counter
that lets readers drop an entry written twice when a publisher retries a
batch whose reply was lost. Node readers ignore unknown fields.
"""
from __future__ import annotations

import base64
import binascii
import enum
import functools
import json
import re
from itertools import repeat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

from . import codec
from .codec import (  # noqa: F401 - re-exported: has_binary, ProtocolError,
    # the stream field readers
    ProtocolError, _Binary, _dumps, _dumps_plain, _pack, _text, _texts,
    _unpack, as_text, has_binary, raw_field)


class MessageType(enum.IntEnum):
    """``MessageType`` of socket.io-adapter's ``ClusterAdapter``."""
    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


#: types whose data Node checks for binary before choosing msgpack
MAY_CONTAIN_BINARY = frozenset({3, 8, 9, 10, 12})
#: Socket.IO packet type EVENT, the only one a BROADCAST carries
EVENT = 2
#: our extra stream field (see above)
SEQ = codec.SEQ
OFFSET_RE = re.compile(r'^[0-9]{1,20}-[0-9]{1,20}$')
#: ASCII digits only (``str.isdigit`` takes '²'), bounded (``int`` refuses
#: more than 4,300 digits, and no real type or seq needs more than this)
_TYPE_RE = re.compile(r'-?[0-9]{1,9}')
#: the types as Node writes them (checked before the regex)
_TYPES = frozenset(str(t) for t in range(1, 14))


_F = TypeVar('_F', bound=Callable[..., Any])


def strict(func: _F) -> _F:
    """Whatever goes wrong decoding input from Redis is a ProtocolError:
    a deeply nested payload (RecursionError), a number too long for
    ``int``, a shape nobody foresaw. Callers skip it; nothing else
    escapes to the reader."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError(
                f'{type(exc).__name__}: {str(exc)[:200]}') from None
    return wrapper  # type: ignore[return-value]


@dataclass
class Message:
    """One adapter message, as Node's ``ClusterMessage``."""
    type: int
    data: Any = None
    uid: str = ''
    nsp: str = '/'
    seq: int | None = field(default=None, compare=False)
    #: the ID of the stream entry it came from (None: PUB/SUB, or local)
    offset: str | None = field(default=None, compare=False)
    #: its data was JSON text, so it holds no bytes
    plain: bool = field(default=False, compare=False)


# --- names -----------------------------------------------------------------

def hash_code(text: str) -> int:
    """Java/JS ``hashCode`` over UTF-16 code units, as a signed int32."""
    h = 0
    units = text.encode('utf-16-le')
    for i in range(0, len(units), 2):
        h = (h * 31 + int.from_bytes(units[i:i + 2], 'little')) & 0xFFFFFFFF
    return h - 0x100000000 if h & 0x80000000 else h


def stream_key(stream_name: str, stream_count: int, nsp: str) -> str:
    """The stream a namespace is written to (JS remainder: may be < 0)."""
    if stream_count <= 1:
        return stream_name
    h = hash_code(nsp)
    r = abs(h) % stream_count
    return f'{stream_name}-{-r if h < 0 else r}'


def public_channel(prefix: str, nsp: str) -> str:
    return f'{prefix}#{nsp}#'


def private_channel(prefix: str, nsp: str, uid: str) -> str:
    return f'{prefix}#{nsp}#{uid}#'


def next_offset(offset: str) -> str:
    """The smallest stream ID after ``offset`` (``T-S`` -> ``T-S+1``)."""
    ms, seq = offset.split('-')
    return f'{ms}-{int(seq) + 1}'


#: before every stream ID, as :func:`offset_key` gives them
BEFORE = (-1, -1)


def offset_key(offset: str) -> tuple[int, int]:
    """A stream ID as a tuple that compares as the ID does."""
    ms, seq = offset.split('-')
    return int(ms), int(seq)


def compare_offsets(a: str, b: str) -> int:
    """-1, 0 or 1 as stream ID ``a`` is before, equal to or after ``b``."""
    ka, kb = offset_key(a), offset_key(b)
    return (ka > kb) - (ka < kb)


# --- options and packets -----------------------------------------------------

def as_list(value: Any) -> list:
    """``None`` -> ``[]``, a str -> ``[str]``, an iterable -> a list."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return [v for v in value if v is not None]


def room_list(value: Any, what: str = 'room') -> list:
    """Rooms (or sids) given by a caller as a list of strings: ``None`` ->
    ``[]``, a str -> ``[str]``, a list, tuple or set of str (None items
    dropped). TypeError for anything else: rooms cross servers as text, and
    a room another server cannot read would reach local clients only."""
    rooms = as_list(value) if isinstance(
        value, (str, list, tuple, set, frozenset)) or value is None else None
    if rooms is None or not all(isinstance(r, str) for r in rooms):
        raise TypeError(f'{what} must be a str or a list of str, '
                        f'got {value!r}')
    return rooms


def make_opts(rooms: Any = None, except_rooms: Any = None,
              flags: Mapping | None = None) -> dict:
    """Broadcast options, keys in Node's order; TypeError for rooms that
    are not strings (see :func:`room_list`)."""
    if rooms is None and except_rooms is None and not flags:
        return {'rooms': [], 'except': [], 'flags': {}}
    return {'rooms': room_list(rooms, 'to/room'),
            'except': room_list(except_rooms, 'skip_sid'),
            'flags': dict(flags or {})}


def broadcast_data(event_data: list, opts: dict,
                   request_id: str | None = None) -> dict:
    """``data`` of a BROADCAST: ``packet`` (EVENT, no nsp, no id), opts."""
    data: dict = {'packet': {'type': EVENT, 'data': event_data}}
    if request_id is not None:
        data['requestId'] = request_id
    data['opts'] = opts
    return data


# --- stream entries ----------------------------------------------------------

def encode_entry(message: Message, only_plaintext: bool = False,
                 text: str | None = None) -> dict:
    """The fields of an ``XADD``, in Node's order (``seq`` last, if set);
    ``text``: the data's JSON, made already."""
    if not isinstance(message.nsp, str) or not isinstance(message.uid, str):
        raise TypeError(f'namespace must be a str, got {message.nsp!r}')
    fields = {'uid': message.uid, 'nsp': message.nsp,
              'type': str(int(message.type))}
    if text is not None:
        fields['data'] = text
    elif message.data:
        fields['data'] = _encode_data(
            message.data, not only_plaintext
            and message.type in MAY_CONTAIN_BINARY)
    if message.seq is not None:
        fields[SEQ] = str(message.seq)
    return fields


def _encode_data(data: Any, may_be_binary: bool) -> str:
    """``data`` as JSON text, or (``may_be_binary`` and bytes anywhere in
    it) base64 of msgpack. JSON is tried first: most data holds no bytes,
    and the encoder finds them without a walk of its own. On any failure
    the data goes the long way, as it always did. Data that refers to
    itself (or is nested too deep to walk) is a ``TypeError``."""
    try:
        return _encode_any(data, may_be_binary)
    except RecursionError:
        raise TypeError('cannot encode for Redis: the data contains '
                        'itself, or is nested too deep') from None


def _encode_any(data: Any, may_be_binary: bool) -> str:
    if may_be_binary:
        try:
            return _dumps_plain(data)
        except _Binary:
            binary = True
        except Exception:  # what _dumps raises, or bytes beyond it
            binary = has_binary(data)
        if binary:
            return base64.b64encode(_pack(data)).decode('ascii')
    return _dumps(data)


def field_text(fields: Any, name: str) -> str | None:
    """One field of a stream entry as text (None if absent), cheaply: to
    look at ``uid`` before decoding the rest."""
    if type(fields) is not dict and not isinstance(fields, Mapping):
        raise ProtocolError('stream entry is not a field map')
    return _text(fields, name)


@strict
def decode_entry(fields: Mapping) -> Message:
    """A stream entry's fields -> :class:`Message`; ProtocolError if bad."""
    if type(fields) is not dict and not isinstance(fields, Mapping):
        raise ProtocolError('stream entry is not a field map')
    uid, nsp, type_, raw, seq = _texts(fields)
    if not nsp:
        raise ProtocolError('stream entry has no nsp field')
    if not uid:
        raise ProtocolError('stream entry has no uid field')
    if type_ is None or (type_ not in _TYPES and
                         not _TYPE_RE.fullmatch(type_)):
        raise ProtocolError(
            f'stream entry has a bad type field {type_[:20]!r}'
            if type_ else 'stream entry has no type field')
    return Message(type=int(type_), data=_decode_data(raw), uid=uid,
                   nsp=nsp, seq=seq_number(seq),
                   plain=raw is not None and raw.startswith('{'))


def seq_number(seq: str | None) -> int | None:
    """Our ``seq`` field; None if absent or not a plain number (1 to 19
    ASCII digits, as ``_TYPE_RE`` bounds a type)."""
    return int(seq) if seq and len(seq) < 20 and seq.isascii() and \
        seq.isdigit() else None


def _decode_data(raw: str | None) -> Any:
    """A stream entry's ``data``: JSON text, or base64 of msgpack."""
    if not raw:
        return None
    if raw.startswith('{'):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f'invalid JSON data: {exc}') from None
    try:
        blob = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError('data is neither JSON nor base64') from None
    return _unpack(blob)


decode_data = strict(_decode_data)


# --- PUB/SUB payloads --------------------------------------------------------

def encode_pubsub(message: Message) -> bytes:
    """Raw msgpack, keys ``type, data, uid, nsp`` (no data if None)."""
    obj: dict = {'type': int(message.type)}
    if message.data is not None:
        obj['data'] = message.data
    obj['uid'] = message.uid
    obj['nsp'] = message.nsp
    return _pack(obj)


@strict
def decode_pubsub(payload: bytes) -> Message:
    """A PUB/SUB payload -> :class:`Message`; ProtocolError if bad."""
    if not isinstance(payload, (bytes, bytearray)):
        raise ProtocolError('PUB/SUB payload is not bytes')
    obj = _unpack(bytes(payload))
    if not isinstance(obj, dict):
        raise ProtocolError('PUB/SUB payload is not a map')
    type_, uid, nsp = obj.get('type'), obj.get('uid'), obj.get('nsp')
    if not isinstance(type_, int) or isinstance(type_, bool):
        raise ProtocolError(f'PUB/SUB payload has a bad type {type_!r}')
    if not isinstance(uid, str) or not isinstance(nsp, str) or not nsp:
        raise ProtocolError('PUB/SUB payload has no uid or nsp')
    return Message(type=type_, data=obj.get('data'), uid=uid, nsp=nsp)


# --- validation of decoded data ----------------------------------------------

def _str_list(value: Any, what: str) -> list:
    if not isinstance(value, list) or not all(
            map(isinstance, value, repeat(str))):
        raise ProtocolError(f'{what} is not a list of strings')
    return value


def _parse_opts(data: Any) -> tuple[list, list, dict]:
    """``(rooms, except, flags)`` from a message's ``opts``."""
    opts = data.get('opts') if isinstance(data, dict) else None
    if not isinstance(opts, dict):
        raise ProtocolError('message has no opts map')
    flags = opts.get('flags')
    flags = {} if flags is None else flags
    if not isinstance(flags, dict):
        raise ProtocolError('opts.flags is not a map')
    return (_str_list(opts.get('rooms', []), 'opts.rooms'),
            _str_list(opts.get('except', []), 'opts.except'), flags)


def _parse_event(data: Any) -> list:
    """``[event, *args]`` of a BROADCAST's packet."""
    packet = data.get('packet') if isinstance(data, dict) else None
    if not isinstance(packet, dict) or packet.get('type') != EVENT:
        raise ProtocolError('broadcast packet is not an EVENT')
    event_data = packet.get('data')
    if (not isinstance(event_data, list) or not event_data
            or not isinstance(event_data[0], str)):
        raise ProtocolError('broadcast packet data is not [event, ...]')
    return event_data


@strict
def parse_rooms(data: Any) -> list:
    """The ``rooms`` of SOCKETS_JOIN / SOCKETS_LEAVE."""
    return _str_list(data.get('rooms') if isinstance(data, dict) else None,
                     'rooms')


def _request_id(data: Any) -> str | None:
    """The ``requestId`` of a request or response, None if absent."""
    rid = data.get('requestId') if isinstance(data, dict) else None
    if rid is not None and not isinstance(rid, str):
        raise ProtocolError('requestId is not a string')
    return rid


parse_opts, parse_event, request_id = (
    strict(_parse_opts), strict(_parse_event), strict(_request_id))


@strict
def parse_broadcast(data: Any) -> tuple[list, list, list, dict,
                                        str | None]:
    """``(event_data, rooms, except, flags, requestId)`` of a BROADCAST
    (one check, for the hot path)."""
    return (_parse_event(data), *_parse_opts(data), _request_id(data))


# --- connection state recovery sessions -------------------------------------

def encode_session(sid: str, pid: str, rooms: list, data: Any,
                   offset: str | None = None) -> str:
    """base64 of msgpack ``{sid, pid, rooms, data}``, as Node stores it,
    with ``offset`` (ours, ignored by Node): the stream ID after which
    every packet the socket missed lies, for a client that has none."""
    session = {'sid': sid, 'pid': pid, 'rooms': rooms, 'data': data}
    if offset is not None:
        session['offset'] = offset
    return base64.b64encode(_pack(session)).decode('ascii')


@strict
def decode_session(value: Any) -> dict:
    """A stored session -> ``{sid, pid, rooms, data}`` (and ``offset``, if
    it has a valid one); ProtocolError if it is not one."""
    if isinstance(value, str):
        value = value.encode('ascii', 'replace')
    if not isinstance(value, (bytes, bytearray)):
        raise ProtocolError('session is not text')
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError('session is not base64') from None
    session = _unpack(raw)
    if not isinstance(session, dict) or not isinstance(
            session.get('sid'), str) or not isinstance(
            session.get('pid'), str):
        raise ProtocolError('session has no sid or pid')
    session['rooms'] = _str_list(session.get('rooms', []), 'session rooms')
    offset = session.pop('offset', None)
    if isinstance(offset, str) and OFFSET_RE.match(offset):
        session['offset'] = offset
    return session


def should_include(session_rooms: Iterable, opts: tuple) -> bool:
    """Node's ``shouldIncludePacket``: a packet with these ``(rooms,
    except)`` reaches a socket in ``session_rooms``."""
    rooms, except_rooms = opts[0], opts[1]
    joined = set(session_rooms)
    return (not rooms or bool(joined.intersection(rooms))) and \
        not joined.intersection(except_rooms)
