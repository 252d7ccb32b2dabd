"""Microseconds per call of the wire-format functions on the hot path,
best of several repeats (steadier than CPU totals on a shared machine).

    python -m benchmarks.protocol
"""
from __future__ import annotations

import timeit

from socketio_streams import protocol
from socketio_streams.protocol import Message, MessageType as T

PAD = 'x' * 100


def cases() -> dict:
    data = protocol.broadcast_data(['n', {'seq': 1, 'pad': PAD}],
                                   protocol.make_opts('here'))
    blob = protocol.broadcast_data(['n', {'seq': 1, 'pad': PAD.encode()}],
                                   protocol.make_opts('here'))
    message = Message(T.BROADCAST, data, 'abcdef', '/', seq=1)
    binary = Message(T.BROADCAST, blob, 'abcdef', '/', seq=1)
    raw = {k.encode(): v.encode()
           for k, v in protocol.encode_entry(message).items()}
    text = {k.decode(): v.decode() for k, v in raw.items()}
    return {
        'encode_entry, JSON': (protocol.encode_entry, message),
        'encode_entry, binary': (protocol.encode_entry, binary),
        'field_text uid (bytes keys)': (protocol.field_text, raw, 'uid'),
        'decode_entry (bytes keys)': (protocol.decode_entry, raw),
        'decode_entry (str keys)': (protocol.decode_entry, text),
    }


def main() -> None:
    for what, (func, *args) in cases().items():
        timer = timeit.Timer(lambda: func(*args))
        number = 20_000
        best = min(timer.repeat(repeat=7, number=number)) / number * 1e6
        print(f'  {what:32} {best:6.2f} us')


if __name__ == '__main__':
    main()
