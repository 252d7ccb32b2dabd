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
from functools import partial
from typing import Any

from .errors import RESPONSE_ERRORS
from .steps import Steps

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
    try:
        yield partial(_send, conn, packed)
        replies: list = []
        for _ in commands:
            try:
                replies.append((yield conn.read_response))
            except RESPONSE_ERRORS as exc:  # this command's; the rest follow
                replies.append(exc)
        return replies
    except BaseException as exc:
        setattr(client, _KEPT, None)
        if not isinstance(exc, GeneratorExit):
            try:  # best effort: the error to report is ``exc``
                yield partial(conn.disconnect)
                yield partial(client.connection_pool.release, conn)
            except Exception:
                pass
        raise


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
