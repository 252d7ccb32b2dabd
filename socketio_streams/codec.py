"""JSON and msgpack as Node's adapter writes them, and stream fields as
redis-py returns them (bytes, or str with ``decode_responses``); no I/O.

Bytes in JSON are Node's ``Buffer.toJSON`` shape; msgpack timestamps (a JS
``Date``) decode to ISO text, as JSON gives them; nothing is unpickled or
evaluated, and anything that fails to decode is a :class:`ProtocolError`.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any, Callable

import msgpack


class ProtocolError(ValueError):
    """A stream entry or PUB/SUB payload that is not a valid message."""


#: our extra stream field (see :mod:`.protocol`)
SEQ = 'seq'


def has_binary(obj: Any) -> bool:
    """True if bytes appear anywhere in ``obj`` (Node's ``hasBinary``)."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return True
    if isinstance(obj, (list, tuple)):
        return any(has_binary(v) for v in obj)
    if isinstance(obj, dict):
        return any(has_binary(v) for v in obj.values())
    return False


def _buffer_json(obj: Any) -> Any:
    """JSON for bytes as Node's ``Buffer.toJSON`` writes it."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {'type': 'Buffer', 'data': list(bytes(obj))}
    raise TypeError(
        f'Object of type {type(obj).__name__} is not JSON serializable')


def _encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """``json.dumps`` as Node's ``JSON.stringify`` writes, made once."""
    return json.JSONEncoder(separators=(',', ':'), ensure_ascii=False,
                            allow_nan=False, default=default).encode


class _Binary(Exception):
    """Bytes met while encoding JSON: the data goes as msgpack."""


def _no_bytes(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raise _Binary
    raise TypeError(
        f'Object of type {type(obj).__name__} is not JSON serializable')


def _unchecked_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """``_encoder(default)`` without its check for circular references
    (one fails on its depth instead, ``RecursionError``): the C encoder
    made once, not at each call as ``JSONEncoder.encode`` makes it (half
    its cost for an emit's data). Its callers take any error as "not this
    way", or turn ``RecursionError`` into their own."""
    make = getattr(json.encoder, 'c_make_encoder', None)
    if make is None:
        return _encoder(default)
    encode = make(None, default, json.encoder.encode_basestring, None, ':',
                  ',', False, False, False)
    return lambda obj: ''.join(encode(obj, 0))


#: JSON text of data, its bytes as Node's ``Buffer.toJSON``
_dumps = _unchecked_encoder(_buffer_json)
#: JSON text of data that holds no bytes; raises otherwise
_dumps_plain = _unchecked_encoder(_no_bytes)


def _pack(obj: Any) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f'cannot encode for Redis: {exc}') from None


def _ext_hook(code: int, data: bytes) -> Any:
    raise ProtocolError(f'unsupported msgpack extension type {code}')


def _normalize(obj: Any) -> Any:
    """Turn msgpack timestamps (a JS ``Date``) into ISO text, like JSON."""
    if isinstance(obj, msgpack.Timestamp):
        dt = obj.to_datetime().astimezone(datetime.timezone.utc)
        return dt.isoformat(timespec='milliseconds').replace('+00:00', 'Z')
    if isinstance(obj, list):
        return [_normalize(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _normalize(v) for k, v in obj.items()}
    return obj


def _unpack(raw: bytes) -> Any:
    try:
        return _normalize(msgpack.unpackb(raw, raw=False, ext_hook=_ext_hook,
                                          strict_map_key=False))
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f'invalid msgpack: {exc}') from None


#: the field names as redis-py returns them by default (bytes), in the
#: order ``_texts`` gives them
_KEYS = {name: name.encode() for name in ('uid', 'nsp', 'type', 'data',
                                          SEQ)}


def _text(fields: Mapping, name: str) -> str | None:
    value = fields.get(_KEYS.get(name) or name.encode())
    if value is None:
        value = fields.get(name)  # a client with decode_responses
        if value is None:
            return None
    if type(value) is bytes:
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise ProtocolError(f'field {name!r} is not UTF-8') from None
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode('utf-8')
        except UnicodeDecodeError:
            raise ProtocolError(f'field {name!r} is not UTF-8') from None
    if isinstance(value, str):
        return value
    raise ProtocolError(f'field {name!r} has type {type(value).__name__}')


def as_text(value: Any) -> str:
    """A reply value (bytes unless the client decodes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def raw_field(fields: Mapping, name: str) -> Any:
    """A field as the client returned it (bytes or str), None if absent."""
    value = fields.get(_KEYS.get(name) or name.encode())
    return fields.get(name) if value is None else value


def _texts(fields: Mapping) -> list[str | None]:
    """``uid, nsp, type, data, seq`` as text (None if absent), in one go:
    bytes (what redis-py returns) decoded here, anything else by
    ``_text``."""
    get, texts = fields.get, []
    for name, key in _KEYS.items():
        value = get(key)
        if type(value) is not bytes:
            texts.append(_text(fields, name))
            continue
        try:
            texts.append(value.decode())
        except UnicodeDecodeError:
            raise ProtocolError(f'field {name!r} is not UTF-8') from None
    return texts
