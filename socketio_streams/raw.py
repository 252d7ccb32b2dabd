"""Commands sent on a connection kept out of its client's pool, their
replies read raw: redis-py's command path (the pool, its bookkeeping, the
packing of each argument, the replies' callbacks) costs as much as the I/O
itself at a steady rate (the reader's ``XREAD``, one entry a read) and
twice the I/O in a burst (the publisher's pipelines of ``XADD``).

Sync and asyncio alike (:mod:`steps <socketio_streams.steps>`); redis-py's
and valkey-py's clients. A client with no one pool (a cluster client) has
none of this: its callers use its own commands.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from functools import partial
from typing import Any, Callable

from .errors import RESPONSE_ERRORS
from .steps import Steps, run

_hiredis_pack: Any
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a default dependency
    _hiredis_pack = None


#: the attribute of a client that holds the connection kept for it
_KEPT = '_socketio_streams_kept'
#: how much an asyncio connection's transport may hold before a write
#: waits for it to drain
DRAIN_ABOVE = 64 * 1024


def kept(client: Any) -> Steps[Any]:
    """The connection kept for ``client``, one of its pool's (steps: an
    asyncio pool gives it by a coroutine). It lives as long as the client
    does: whatever fails, the caller drops the client (and closes its
    connections, this one too), and a new client gets a new one."""
    conn = getattr(client, _KEPT, None)
    if conn is None:
        conn = yield partial(_checkout, client.connection_pool)
        setattr(client, _KEPT, conn)
    return conn


def has_pool(client: Any) -> bool:
    """Whether ``client`` reads and writes through one pool (not a
    cluster client): what ``kept`` needs."""
    return getattr(client, 'connection_pool', None) is not None


def pipeline(client: Any, commands: list[tuple]) -> Steps[list]:
    """Send ``commands`` in one write on the connection kept for
    ``client``, then read their replies: a list with an error reply's
    exception in its place, as redis-py's
    ``pipeline(transaction=False).execute(raise_on_error=False)`` gives.
    What cannot be packed raises before anything is sent; anything else
    raises too, and that connection goes back to the pool disconnected
    (it may be out of step with its replies)."""
    conn = yield from kept(client)
    packed = pack(conn, commands)  # what cannot be packed raises here
    return (yield from _exchange(client, conn, len(commands), packed))


def write_ahead(client: Any, commands: list[tuple]) -> Any:
    """Write ``commands`` at once on the connection kept for ``client``,
    from a plain call (sync; or on the event loop, for an asyncio one,
    into its transport): the connection written to, whose replies
    ``replies`` reads; None if nothing was written (no connection kept
    yet or not connected, a command that cannot be packed, an asyncio
    connection whose parser is not hiredis': ``reply_now`` could never
    take its reply, and the task would be woken for each). A write that
    fails drops the connection, as ``pipeline`` does, and gives None:
    part of a command may have gone, none ran."""
    conn: Any = getattr(client, _KEPT, None)
    writer: Any = getattr(conn, '_writer', None)
    on_loop = isinstance(writer, asyncio.StreamWriter)
    if on_loop:
        if not conn.is_connected or writer.transport.is_closing() or \
                conn._reader.at_eof() or _gets(conn) is None:
            return None  # closed by Redis (half open); no reply to take
    elif getattr(conn, '_sock', None) is None:
        return None
    try:
        packed = pack(conn, commands)
    except Exception:  # the caller's task sends them, and reports it
        return None
    if on_loop:  # never blocks; a connection lost meanwhile: replies say
        writer.writelines(packed)
        return conn
    try:
        conn.send_packed_command(packed, False)
    except BaseException as exc:
        run(_drop(client, conn))
        if not isinstance(exc, Exception):
            raise
        return None
    return conn


#: no reply yet (see ``reply_now``)
NOT_YET: Any = object()


def reply_now(conn: Any) -> Any:
    """The reply of the one command ``write_ahead`` wrote on ``conn`` if
    it has come (an error reply's exception in its place), without
    waiting; else ``NOT_YET``, and also if the connection fails: then
    ``replies`` fails on it too (redis-py disconnects a connection whose
    read failed), and drops it. With hiredis on a plain socket with a
    timeout (non-blocking underneath), one ``read`` of its descriptor
    (redis-py's ``can_read`` and ``read_response`` poll three times, and
    a socket's own ``recv`` waits for its timeout). An asyncio
    connection's: what its stream already read (``_buffered``)."""
    sock, gets = getattr(conn, '_sock', None), _gets(conn)
    if isinstance(getattr(conn, '_reader', None), asyncio.StreamReader):
        return _buffered(conn, gets)
    if sock is None:  # disconnected: not connected again here
        return NOT_YET
    if gets is None or type(sock) is not socket.socket or \
            not sock.gettimeout() or not hasattr(os, 'readv') or \
            not isinstance(getattr(conn._parser, '_buffer', None), bytearray):
        return _reply_now(conn)
    reply = gets()
    if reply is _NONE:
        try:
            size = os.readv(sock.fileno(), [conn._parser._buffer])
        except OSError:  # nothing yet (or a failure the task will meet)
            return NOT_YET
        if not size:  # closed: the task's read says so
            conn.disconnect()
            return NOT_YET
        conn._parser._reader.feed(conn._parser._buffer, 0, size)
        reply = gets()
    if isinstance(reply, RESPONSE_ERRORS):
        return reply
    if reply is _NONE or isinstance(reply, Exception):
        if reply is not _NONE:  # a connection error the parser gave
            conn.disconnect()
        return NOT_YET
    return reply


def _buffered(conn: Any, gets: Callable[[], Any] | None) -> Any:
    """``reply_now`` for an asyncio connection: what its stream (an
    ``asyncio.StreamReader``, filled by the event loop whether or not a
    read waits) holds, handed to its hiredis parser, which redis.asyncio
    feeds from the same stream. ``NOT_YET`` for any other parser, or a
    stream not as this Python has it: the task then reads the reply."""
    stream = conn._reader
    buffer = getattr(stream, '_buffer', None)
    if gets is None or not isinstance(buffer, bytearray) or \
            not hasattr(stream, '_maybe_resume_transport'):
        return NOT_YET
    reply = gets()
    if reply is _NONE and buffer:
        conn._parser._reader.feed(bytes(buffer))
        buffer.clear()
        stream._maybe_resume_transport()
        reply = gets()
    # a connection error the parser gave (Redis loading): the task's
    # to meet, as a transient reply, and to reconnect
    return NOT_YET if reply is _NONE else reply


class Ahead:
    """A command ``write_ahead`` wrote on ``conn`` (kept for ``client``):
    when, and its reply once read."""

    def __init__(self, client: Any, conn: Any):
        self.client, self.conn, self.at = client, conn, time.monotonic()
        self.reply: Any = NOT_YET

    def now(self) -> Any:
        """Its reply if it has come (see ``reply_now``), else NOT_YET."""
        if self.reply is NOT_YET:
            self.reply = reply_now(self.conn)
        return self.reply

    def wait(self) -> Steps[list]:
        """Its reply, in a list, waited for if need be (see ``replies``)."""
        if self.reply is not NOT_YET:
            return [self.reply]
        return (yield from replies(self.client, self.conn, 1))


def _reply_now(conn: Any) -> Any:
    """``reply_now`` by redis-py's ``can_read`` and ``read_response``."""
    try:
        if not conn.can_read(0):
            return NOT_YET
        return conn.read_response()
    except RESPONSE_ERRORS as exc:  # this command's
        return exc
    except Exception:
        return NOT_YET


def replies(client: Any, conn: Any, count: int) -> Steps[list]:
    """The replies of the ``count`` commands ``write_ahead`` wrote on
    ``conn`` (see ``pipeline``)."""
    return (yield from _exchange(client, conn, count))


def send(client: Any, commands: list[tuple]) -> Steps[None]:
    """Write ``commands`` on the connection kept for ``client``; ``reply``
    reads their replies, one at a time (errors: see ``pipeline``)."""
    conn = yield from kept(client)
    packed = pack(conn, commands)
    yield from _exchange(client, conn, 0, packed)


def reply(client: Any) -> Steps[Any]:
    """The next reply on the connection kept for ``client``, of what
    ``send`` wrote: an error reply's exception in its place (see
    ``pipeline``). None kept (it was dropped): ConnectionError."""
    conn = getattr(client, _KEPT, None)
    if conn is None:
        raise ConnectionError('no connection kept: its replies are gone')
    return (yield from _exchange(client, conn, 1))[0]


def drop(client: Any) -> Steps[None]:
    """Drop the connection kept for ``client``, if any, and what it was
    to read."""
    conn = getattr(client, _KEPT, None)
    if conn is not None:
        yield from _drop(client, conn)


def entries(reply: Any) -> list:
    """The ``[entry ID, fields]`` of an ``XREAD`` (or ``XREADGROUP``)
    reply for one stream, RESP2 or RESP3; none for a nil one."""
    if isinstance(reply, dict):  # RESP3
        reply = list(reply.items())
    for _key, found in reply or ():
        if found and isinstance(found[0], list) and len(found) == 1 and \
                isinstance(found[0][0], list):
            found = found[0]  # RESP3 nests one more level
        return found or []
    return []


def _exchange(client: Any, conn: Any, count: int,
              packed: list[bytes] | None = None) -> Steps[list]:
    """Write ``packed`` (if any), then read ``count`` replies."""
    try:
        if packed is not None:
            yield partial(_send, conn, packed)
        replies: list = []
        # a pipeline's later replies that the parser holds already are
        # taken from it, skipping the client's path per reply (redis.
        # asyncio's timeout, a timer set and cancelled each time: a fifth
        # of a publishing server's time in a burst; redis-py's checks
        # around its parser); the first, and any not read from the socket
        # yet, go through read_response
        held = _gets(conn) if count > 1 else None
        for _ in range(count):
            reply = held() if held is not None and replies else _NONE
            if reply is _NONE:
                try:
                    reply = yield conn.read_response
                except RESPONSE_ERRORS as exc:  # this command's
                    reply = exc
            else:
                _raise_unless_reply(reply)
            replies.append(reply)
        return replies
    except BaseException as exc:
        setattr(client, _KEPT, None)
        if not isinstance(exc, GeneratorExit):
            yield from _drop(client, conn)
        raise


#: no whole reply held by the parser (see ``_gets``)
_NONE = object()


def _gets(conn: Any) -> Callable[[], Any] | None:
    """For a connection whose parser is hiredis' (or libvalkey's): what
    gives the next reply its parser already holds, or ``_NONE`` if it
    holds no whole one (a RESP3 push, which these connections do not ask
    for, is passed over as the parser does); None for any other."""
    parser = getattr(conn, '_parser', None)
    gets = getattr(getattr(parser, '_reader', None), 'gets', None)
    if gets is None:
        return None
    missing = getattr(sys.modules.get(type(parser).__module__),
                      'NOT_ENOUGH_DATA', False)
    if missing is False and str(getattr(conn, 'protocol', 2)) == '3':
        return None  # "not yet" would read as a RESP3 false
    push = getattr(parser, '_hiredis_PushNotificationType', None) or ()

    def held() -> Any:
        reply = gets()
        while isinstance(reply, push):
            reply = gets()
        return _NONE if reply is missing else reply
    return held


def _raise_unless_reply(reply: Any) -> None:
    """Raise what the parser's ``read_response`` raises instead of giving
    it (a connection error: a lost connection, Redis loading); an error
    reply is the command's (see ``pipeline``)."""
    first = reply[0] if type(reply) is list and reply else reply
    if isinstance(first, Exception) and \
            not isinstance(first, RESPONSE_ERRORS):
        raise first


def _drop(client: Any, conn: Any) -> Steps[None]:
    """Forget ``client``'s kept connection, and hand it back to its pool
    disconnected (best effort: the error to report is the caller's)."""
    setattr(client, _KEPT, None)
    try:
        yield partial(conn.disconnect)
        yield partial(client.connection_pool.release, conn)
    except Exception:
        pass


def command(client: Any, *args: Any) -> Steps[Any]:
    """One command (see ``pipeline``): its reply; an error reply
    raises."""
    reply = (yield from pipeline(client, [args]))[0]
    if isinstance(reply, Exception):
        raise reply
    return reply


def pack(conn: Any, commands: list[tuple]) -> list[bytes]:
    """``commands`` as RESP, for ``conn.send_packed_command``: by hiredis
    where the connection encodes text as UTF-8 (hiredis' way), else by
    the connection itself (and its own errors for what it cannot
    encode)."""
    encoder = getattr(conn, 'encoder', None)
    encoding = str(getattr(encoder, 'encoding', '')).lower()
    if _hiredis_pack is not None and \
            encoding.replace('-', '') == 'utf8' and \
            getattr(encoder, 'encoding_errors', None) == 'strict':
        try:
            return [b''.join([_hiredis_pack(args) for args in commands])]
        except TypeError:  # an argument hiredis does not take
            pass
    return conn.pack_commands(commands)


def _send(conn: Any, packed: list[bytes]) -> Any:
    """Write ``packed`` on ``conn``. An asyncio connection's stream is
    written at once, and drained (through redis.asyncio, with its timeout
    and errors) only if its transport holds more than ``DRAIN_ABOVE``
    bytes: its ``send_packed_command`` writes in ``wait_for``, a task of
    its own, one more turn of the loop before anything is sent (80 us more
    latency per packet, measured at a steady rate). A connection lost
    meanwhile drops the write; reading its reply says so."""
    writer = getattr(conn, '_writer', None)
    if not isinstance(writer, asyncio.StreamWriter) or \
            not conn.is_connected:
        return conn.send_packed_command(packed, False)
    writer.writelines(packed)
    if writer.transport.get_write_buffer_size() > DRAIN_ABOVE:
        return conn.send_packed_command([], False)
    return None


def _checkout(pool: Any) -> Any:
    """A connection of ``pool`` (or the coroutine giving it): redis-py's
    takes no argument, valkey-py's a command name."""
    try:
        return pool.get_connection()
    except TypeError:
        return pool.get_connection('XREAD')
