"""The common stream entry in one pass: a BROADCAST whose data is JSON
text without ``requestId`` (what every emit writes, Node's and ours).
Written: the event's JSON made once, for the entry and for local clients
(``event_json``, ``broadcast_data``). Read as redis-py returns it (bytes):
``fields``, ``tail_opts``, ``broadcast``. No I/O, and no errors: whatever
is unusual is left to the general path (:func:`.protocol.encode_entry`,
:func:`.protocol.decode_entry` and the handlers), which reports it."""
from __future__ import annotations

import json
from typing import Any

from .codec import _dumps, _dumps_plain
from .protocol import _parse_event, _parse_opts, _request_id

_decode_json = json.JSONDecoder().raw_decode


def event_json(event_data: list) -> str | None:
    """An EVENT's ``[event, *args]`` as JSON text, as Node writes it; None
    if it holds bytes, or anything else JSON does not carry as it is."""
    try:
        return _dumps_plain(event_data)
    except Exception:
        return None


def broadcast_data(text: str, opts: dict) -> str:
    """The ``data`` of a BROADCAST (no ``requestId``) whose packet's data
    is ``text`` (``event_json``): the JSON of
    :func:`.protocol.broadcast_data`, the event's part not written
    again."""
    return _PACKET_TEXT + text + '},"opts":' + (
        _dumps(opts) if opts['rooms'] or opts['except'] or opts['flags']
        else _NO_OPTS) + '}'


#: how a plain BROADCAST's data begins, up to its event's JSON (as we
#: write it, and Node; ``broadcast`` reads the event's text after it)
_PACKET_TEXT = '{"packet":{"type":2,"data":'
_PACKET = _PACKET_TEXT.encode()
#: the JSON of ``make_opts()``: to everyone
_NO_OPTS = '{"rooms":[],"except":[],"flags":{}}'
#: how such a BROADCAST's data ends
_NO_OPTS_TAIL = f'"opts":{_NO_OPTS}}}'.encode()


def fields(entry: Any) -> tuple[bytes, bytes, bytes | None] | None:
    """``(nsp, data, seq)`` of a plain BROADCAST entry with a ``uid`` and
    ``nsp`` (bytes, not empty: they read as ``decode_entry`` reads them);
    None for any other entry."""
    if type(entry) is not dict:
        return None
    get = entry.get
    data, uid, nsp, seq = get(b'data'), get(b'uid'), get(b'nsp'), \
        get(b'seq')
    if get(b'type') != b'3' or type(data) is not bytes or \
            data[:1] != b'{' or type(uid) is not bytes or not uid or \
            type(nsp) is not bytes or not nsp or b'"requestId"' in data:
        return None
    if seq is None:
        return None if get('seq') is not None else (nsp, data, None)
    return (nsp, data, seq) if type(seq) is bytes else None


def tail_opts(data: bytes) -> tuple[int, tuple[list, list, dict]] | None:
    """Where a plain BROADCAST's ``opts`` begins, and ``(rooms, except,
    flags)`` read from it at the end of its JSON (where Node and we write
    it) without decoding the packet: what decoding it all would give, if
    it decodes. None if it is not there so, or a ``\\u`` escape could
    spell a ``requestId``."""
    if data.endswith(_NO_OPTS_TAIL):  # to everyone: nothing to decode
        at = len(data) - len(_NO_OPTS_TAIL)
        if data[at - 1] in b',{' and b'\\u' not in data:
            return at, ([], [], {})
        return None
    at = data.rfind(b'"opts":')
    if at < 1 or data[at - 1] not in b',{' or data[-1:] != b'}' or \
            b'\\u' in data:
        return None
    try:
        text = data[at + 7:].decode()
        opts, end = _decode_json(text)
        if end != len(text) - 1:  # not the last key of the outer object
            return None
        return at, _parse_opts({'opts': opts})
    except Exception:
        return None


def broadcast(data: bytes, tail: tuple[int, tuple] | None = None
              ) -> tuple[list, list, list, dict, str | None] | None:
    """``(event_data, rooms, except, flags, text)`` of a plain BROADCAST,
    the first four as :func:`.protocol.parse_broadcast` gives them; None
    if it does not give them so (a ``requestId``, bad input). With its
    ``tail_opts``, the JSON before them is decoded (valid if and only if
    all of it is, the opts being the last key). ``text``: the event's
    JSON as the entry holds it, if ASCII and laid out as Node and we write
    it (``broadcast_data``): what a Node server sends its clients, and for
    our entries what python-socketio would make of ``event_data``."""
    try:
        if tail is not None and data.startswith(_PACKET) and \
                data[tail[0] - 2:tail[0]] == b'},':
            text = data[len(_PACKET):tail[0] - 2].decode()
            event_data, end = _decode_json(text)
            if end == len(text) and type(event_data) is list and \
                    event_data and type(event_data[0]) is str:
                return (event_data, *tail[1],
                        text if text.isascii() else None)
        if tail is None:  # (else laid out otherwise: decoded as a whole)
            text, opts = data.decode(), None
        else:  # ',' before it: more than opts
            at, opts = tail
            text = data[:at - 1].decode() + '}' if data[at - 1] == 0x2c \
                else '{}'
        message, end = _decode_json(text)
        if end != len(text):  # (json.loads takes trailing whitespace)
            return None
        if type(message) is not dict or _request_id(message) is not None:
            return None
        return (_parse_event(message), *(opts or _parse_opts(message)),
                None)
    except Exception:
        return None
