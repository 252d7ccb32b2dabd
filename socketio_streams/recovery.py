"""Connection state recovery: sessions in Redis, missed packets from the
stream, read in bounded batches. What does I/O is :mod:`steps
<socketio_streams.steps>` (``take``, ``Backlog.next``)."""
from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any

from . import protocol
from .protocol import ProtocolError
from .steps import Steps

#: entries per XRANGE while replaying a backlog
BATCH = 100


class Hole(Exception):
    """Entries a recovering client missed were trimmed from the stream."""


class Recovery:
    """Stores and takes back sessions; reads what a client missed."""

    def __init__(self, connector, options, log):
        self._connector = connector
        self._options = options
        self._log = log

    @property
    def ttl_ms(self) -> int:
        recovery = self._options.connection_state_recovery or {}
        return int(recovery['max_disconnection_duration'] * 1000)

    def key(self, pid: str) -> str:
        return self._options.session_key_prefix + pid

    def take(self, pid: Any, offset: Any,
             stream: str) -> Steps[dict | None]:
        """Steps: the session of ``pid`` if it can be restored from ``offset``
        (still in the stream) or, for a client that has none (None), from
        the offset stored with the session; consumed; otherwise None."""
        if not isinstance(pid, str) or not pid:
            return None
        if offset is None:
            return (yield from self._take_stored(pid, stream))
        if not isinstance(offset, str) or not protocol.OFFSET_RE.match(
                offset):
            return None
        client = self._connector.client()
        if not (yield partial(client.xrange, stream, offset, offset,
                              count=1)):
            self._log.info('recovery of %s refused: offset %s is no longer '
                           'in %r', pid, offset, stream)
            return None
        session = yield from self._pop(client, pid)
        if session is not None:
            session['offset'] = offset
        return session

    def _take_stored(self, pid: str, stream: str) -> Steps[dict | None]:
        """For a client that received no offset: from the one stored at
        its disconnection (where the stream stood when it connected)."""
        client = self._connector.client()
        session = yield from self._pop(client, pid)
        if session is None:
            return None
        if 'offset' not in session:  # stored by a Node server
            self._log.info('recovery of %s refused: no offset from the '
                           'client, none stored with its session', pid)
            return None
        pipe = client.pipeline(transaction=False)
        _check_head(pipe, stream)
        if not _intact(session['offset'], *(
                yield partial(pipe.execute, raise_on_error=False))):
            self._log.info('recovery of %s refused: %r was trimmed past %s',
                           pid, stream, session['offset'])
            return None
        return session

    def _pop(self, client: Any, pid: str) -> Steps[dict | None]:
        """GET and DEL the stored session of ``pid``, decoded."""
        # a cluster client may have no MULTI (valkey-py): one key, one node,
        # one round trip all the same
        pipe = client.pipeline(transaction=not hasattr(client, 'get_nodes'))
        pipe.get(self.key(pid))
        pipe.delete(self.key(pid))
        value = (yield partial(pipe.execute))[0]
        if value is None:
            return None
        try:
            return protocol.decode_session(value)
        except ProtocolError as exc:
            self._log.warning('ignoring stored session %s: %s', pid, exc)
            return None

    def backlog(self, stream: str, offset: str) -> Backlog:
        """What a client missed after ``offset`` (see :class:`Backlog`)."""
        return Backlog(self._connector.client(), stream, offset)


class Backlog:
    """The entries of ``stream`` after ``offset``, in order, read in
    batches of :data:`BATCH`: ``entry = yield from backlog.next()`` until
    it is None. Raises :class:`Hole` if trimming removed any of them
    meanwhile."""

    def __init__(self, client: Any, stream: str, offset: str):
        self._client = client
        self._stream = stream
        #: where the next batch starts (after it)
        self._cursor = offset
        self._batch: deque[tuple[str, Any]] = deque()
        self._more = True

    def next(self) -> Steps[tuple[str, Any] | None]:
        """Steps: the next ``(entry_id, fields)``, None after the last."""
        if not self._batch and self._more:
            yield from self._read()
        return self._batch.popleft() if self._batch else None

    def _read(self) -> Steps[None]:
        # the batch first, the head of the stream after (no MULTI, which
        # a cluster client may lack): trimming only moves the head
        # forward, so a head at or before the cursor after the read
        # means nothing after the cursor was trimmed before it
        pipe = self._client.pipeline(transaction=False)
        pipe.xrange(self._stream, protocol.next_offset(self._cursor),
                    count=BATCH)
        _check_head(pipe, self._stream)
        entries, *head = yield partial(pipe.execute, raise_on_error=False)
        if isinstance(entries, Exception):
            raise entries
        if not _intact(self._cursor, *head):
            raise Hole(f'{self._stream!r} was trimmed past {self._cursor}')
        self._batch.extend((protocol.as_text(entry_id), _field_map(fields))
                           for entry_id, fields in entries)
        if self._batch:
            self._cursor = self._batch[-1][0]
        self._more = len(entries) >= BATCH


def _check_head(pipe: Any, stream: str) -> None:
    """Queue what :func:`_intact` needs: the first entry, XINFO STREAM."""
    pipe.xrange(stream, count=1)
    pipe.xinfo_stream(stream)


def _intact(cursor: str, first: Any, info: Any) -> bool:
    """True if nothing after ``cursor`` was removed from the stream: its
    first entry is at or before it, or it never lost an entry (Redis >= 7
    counts them: ``cursor`` need not be an entry, e.g. one recorded at a
    connection), or it does not exist and ``cursor`` is its beginning."""
    if isinstance(first, Exception):
        raise first
    if first and protocol.compare_offsets(protocol.as_text(first[0][0]),
                                          cursor) <= 0:
        return True
    if isinstance(info, Exception):
        if 'no such key' not in str(info).lower():
            raise info
        return cursor == '0-0'
    return isinstance(info, dict) and \
        info.get('entries-added') == info.get('length')


def _field_map(fields: Any) -> Any:
    """Entry fields as a dict: a cluster client's MULTI/EXEC may leave
    them as the flat ``[name, value, ...]`` list of the wire."""
    if isinstance(fields, list):
        return dict(zip(fields[::2], fields[1::2]))
    return fields
