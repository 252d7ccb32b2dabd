"""The read side of the streams: an ``XREAD BLOCK`` loop per stream
(:class:`~socketio_streams.task_loop.Loop`) that remembers the last entry
ID it handled and resumes from it after any error, checks that trimming
or a vanished stream did not skip entries, and hands each entry over.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable

from . import groups, protocol, raw
from .positions import Reporter
from .connection import RESPONSE_ERRORS, close_client
from .steps import Steps
from .task_loop import Loop


#: how far ahead of the clock a stream's IDs may be before it is reported
CLOCK_SLACK = 3600.0


def from_now() -> str:
    """The stream position before every entry written from now on by this
    host's clock (an ID of this millisecond included: XREAD gives the
    entries after the one named)."""
    return f'{int(time.time() * 1000) - 1}-{2 ** 64 - 1}'


class StreamReader(Loop):
    """Tails one stream; hands ``(key, entry_id, fields)`` to ``handle``.

    ``position`` counts the entries ever added up to ``last_id`` (Redis
    >= 7 reports ``entries-added``), so that after a reconnection, or while
    lagging, the reader can tell how many entries ``MAXLEN`` trimmed before
    it read them.
    """

    #: while reading a backlog, one ``XINFO`` per this many seconds, or
    #: per ``max_len / 2`` entries read if that comes first
    CHECK_INTERVAL = 0.5

    def __init__(self, key: str, connector, runtime, options, stats, log,
                 handle: Callable[[str, str, Any], None],
                 uid: str | None = None):
        super().__init__(connector, runtime, stats, log)
        #: writes the position for publishers elsewhere (with a ``uid``)
        self._reporter = None if uid is None else \
            Reporter(key, uid, options.max_len, log)
        self._group = None if uid is None else groups.Group(key, uid, log)
        #: how this server's own entries begin, read raw: skipped here,
        #: as ``handle`` would (delivered locally when emitted)
        self._own = None if uid is None else [b'uid', uid.encode()]
        self.key = key
        self.what = f'reader of {key!r}'
        self._options = options
        self._handle = handle
        self.last_id: str | None = None
        self.position: int | None = None
        #: entries written but not read yet, as of the last full batch
        #: (0 once a read comes back short: caught up)
        self.lag = 0
        self._check = False
        #: when the last check was (monotonic), entries read since
        self._checked, self._unchecked = -self.CHECK_INTERVAL, 0
        #: set while the stream this reader had read is gone (healthy()
        #: is false meanwhile); None once it is back
        self.trouble: str | None = None
        self._ahead_logged = False

    @property
    def reported(self) -> bool:
        """Whether a position (:mod:`.positions`) or a consumer group
        (:mod:`.groups`) of this reader's may be in Redis."""
        return self._reporter is not None and self._reporter.reported or \
            self._group is not None and self._group.made

    def forget_position(self, client: Any) -> Steps[None]:
        """Delete this reader's position and group in Redis (once
        stopped), by ``client``."""
        if self._reporter is not None:
            yield from self._reporter.forget(client)
        if self._group is not None:
            yield from self._group.forget(client)

    def _connect(self) -> Any:
        if self._stopped:  # not one more blocking command once stopped
            raise ConnectionError('stopped')
        if self._client is None:
            self._client = self._connector.new_client(
                socket_timeout=self._options.block_seconds + 10,
                cluster_retries=0)
        self._used = self._client
        return self._client

    def _info(self, client: Any = None) -> Steps[dict | None]:
        """``XINFO STREAM``, or None when the stream does not exist."""
        try:
            return (yield partial((client or self._connect()).xinfo_stream,
                                  self.key))
        except RESPONSE_ERRORS as exc:
            if 'no such key' in str(exc).lower():
                return None
            raise

    def pin(self, timeout: float | None = None) -> Steps[str]:
        """Start at the current end of the stream (a concrete ID). If
        Redis cannot tell, start at entries written from now on (by this
        host's clock), so that nothing is missed while it is unreachable.
        With ``timeout``, ask on a connection of its own that gives up
        after that many seconds (a frozen Redis holds no caller longer)."""
        client = None if timeout is None else self._connector.new_client(
            socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=None)
        try:
            info = yield from self._info(client)
        except Exception:
            self.last_id = from_now()
            raise
        finally:
            if client is not None:
                yield partial(close_client, client, self._log.debug)
        if info is None:
            self.last_id, self.position = '0-0', 0
        else:
            self.last_id = protocol.as_text(info['last-generated-id'])
            self.position = info.get('entries-added')
        return self.last_id

    def _on_failure(self, exc: Exception) -> Steps[None]:
        self._check = True
        yield from super()._on_failure(exc)

    def step(self) -> Steps[None]:
        if self.last_id is None:
            yield from self.pin()
        elif self._check:
            yield from self._check_position()
        self._check = False
        # after repeated failures, one entry at a time: if a batch is what
        # gets the connection killed (a proxy's or Redis' output limit),
        # smaller replies still get through
        batch = min(self._options.read_count, self._runtime.read_batch) \
            if self.failures < 3 else 1
        count, own = 0, self._own
        for entry_id, fields in raw.entries((yield from self._xread(batch))):
            entry_id = protocol.as_text(entry_id)
            self.last_id = entry_id
            count += 1
            if self.position is not None:
                self.position += 1
            if type(fields) is list:  # read raw: [field, value, ...]
                if fields[:2] == own:
                    continue
                pairs = iter(fields)
                fields = dict(zip(pairs, pairs))
            steps = self._hand_over(self._handle, self.key, entry_id,
                                    fields or {})
            if steps is not None:
                yield from steps
            if count % self._runtime.pause_every == 0:
                yield self._runtime.pause
        if count:
            self.trouble = None
        # a full batch means a backlog: make sure trimming is not eating
        # it (see CHECK_INTERVAL; and once caught up, when the count of
        # entries trimmed unread is exact); an empty one (a BLOCK
        # timeout), that the stream is still the one being read (deleted,
        # restarted or its IDs far ahead)
        self._unchecked += count
        if count >= batch:
            self._check = self._unchecked >= self._options.max_len // 2 or \
                time.monotonic() >= self._checked + self.CHECK_INTERVAL
            self.lag = max(self.lag - count, count)
        else:
            self._check = count == 0 or self.lag > 0
            self.lag = 0
        if self._reporter is not None and self.last_id:
            # last: a report that fails (Redis gone) leaves what was read
            # counted, and the client it fails on goes as an XREAD's would
            yield from self._reporter.read(
                self._used, count, self.last_id,
                self._group is None or not self._group.reading)

    def _xread(self, count: int) -> Steps[Any]:
        """What was written after ``last_id``: read by the reader's
        consumer group (:mod:`.groups`) where it can, else by ``XREAD``,
        sent on a connection the reader keeps and its reply read raw
        (:mod:`.raw`); a cluster client reads through its ``xread``.
        Whatever fails drops the client, and the connection with it
        (``_on_failure``)."""
        client = self._connect()
        block = self._options.block_time_ms
        if not raw.has_pool(client):
            return (yield partial(client.xread, {self.key: self.last_id},
                                  count=count, block=block))
        if self._group is not None:
            assert self.last_id is not None
            reply = yield from self._group.read(client, self.last_id, count,
                                                block)
            if reply is not groups.NOT_USED:
                return reply
        return (yield from raw.command(
            client, 'XREAD', 'COUNT', count, 'BLOCK', block, 'STREAMS',
            self.key, self.last_id))

    def _check_clock(self, last_generated: str) -> None:
        """Say once that the stream's IDs are far ahead of this host's
        clock (an entry added with an explicit ID, or a clock set
        wrong): every later entry gets an ID after it."""
        ahead = int(last_generated.split('-')[0]) / 1000 - time.time()
        if ahead > CLOCK_SLACK and not self._ahead_logged:
            self._ahead_logged = True
            self._log.warning(
                '%s: the stream\'s last ID %s is %.0f s ahead of this '
                'host\'s clock (an entry added with an explicit ID?); '
                'reading goes on after it', self.what, last_generated, ahead)

    def _trouble(self, text: str) -> None:
        if self.trouble != text:
            self._log.warning('%s: %s', self.what, text)
        self.trouble = text

    def _check_position(self) -> Steps[None]:
        """Notice a restarted (emptied) stream, or entries trimmed unread."""
        info = yield from self._info()
        self._checked, self._unchecked = time.monotonic(), 0
        if self.last_id is None:
            return
        if info is None:
            if self.last_id != '0-0':
                self._trouble(f'the stream vanished (deleted, or Redis '
                              f'restarted or was flushed) after entry '
                              f'{self.last_id}; reading it from its start '
                              f'when it is back')
                self.last_id, self.position = '0-0', 0
            return
        self.trouble = None
        last_generated = protocol.as_text(info['last-generated-id'])
        self._check_clock(last_generated)
        if protocol.compare_offsets(last_generated, self.last_id) < 0:
            self._log.warning(
                '%s: the stream restarted (last ID %s, before %s, the last '
                'entry read; Redis restarted without persistence?); reading '
                'the new stream from its start', self.what, last_generated,
                self.last_id)
            self.last_id, self.position = '0-0', 0
            return
        added, length = info.get('entries-added'), info.get('length', 0)
        first = info.get('first-entry')
        if added is None or self.position is None or not first:
            return
        if added < self.position:  # counters restarted with a new stream
            self.position = added - length
            return
        self.lag = max(0, added - self.position)
        first_id = protocol.as_text(first[0])
        if protocol.compare_offsets(first_id, self.last_id) > 0:
            missed = added - length - self.position  # those before first
            where = f'after {self.last_id} ({_when(self.last_id)}) up to ' \
                f'{first_id} ({_when(first_id)}) were'
        elif last_generated == self.last_id:  # all read, or trimmed unread
            missed = added - self.position
            where = f'before {self.last_id} ({_when(self.last_id)}) had ' \
                'been'
        else:
            return  # not known yet: a later check counts them
        if missed > 0:
            self._stats.incr('gaps', missed)
            self._log.error(
                '%s: fell behind by %d entries: entries %s trimmed '
                '(max_len=%d) before this server read them; carrying on',
                self.what, missed, where, self._options.max_len)
            self.position += missed
            self.lag -= missed


def _when(entry_id: str) -> str:
    """The wall-clock time of a stream ID, for log lines."""
    ms = int(entry_id.split('-')[0])
    return time.strftime('%H:%M:%S', time.gmtime(ms / 1000)) + \
        f'.{ms % 1000:03d} UTC'
