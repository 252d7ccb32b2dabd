"""The manager's links to Redis, over redis-py's sync clients: the
publisher, a stream reader per stream in use and the PUB/SUB subscriber,
started as the server's own background tasks (threading, eventlet,
gevent), and what is queued to them."""
from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any, Callable

from . import protocol
from .connection import close_client
from .protocol import Message, MessageType as T
from .positions import Remote
from .pressure import Unread
from .publisher import Item, Publisher
from .reader import StreamReader, from_now
from .subscriber import Subscriber
from .steps import Steps

#: how long after new channels were added connections wait for their
#: SUBSCRIBE to be sent (a few ms while Redis answers)
SUBSCRIBE_WAIT = 1.0
#: how long the first connection to a namespace waits for ``XINFO`` (to pin
#: its stream's reader); a Redis that does not answer within it is not asked
#: again for ``PIN_RETRY_AFTER`` seconds: the reader pins by the clock
PIN_TIMEOUT = 0.5
PIN_RETRY_AFTER = 5.0
#: how long a closing manager waits for Redis to delete its positions
FORGET_TIMEOUT = 0.5


#: a BROADCAST's ``type`` field
_BROADCAST_TYPE = str(int(T.BROADCAST))


class Links:
    """Publisher, readers and subscriber of one manager, in one process.

    ``mgr`` gives what may change over its life (read at each use):
    ``uid``, ``options``, ``_connector``, ``_runtime``, ``_stats``,
    ``_log``, ``_closed``, ``_inbound`` (where what is read goes) and
    ``_known_namespaces()``."""

    def __init__(self, mgr: Any, pin_failed_at: float = -PIN_RETRY_AFTER):
        self._mgr = mgr
        self.publisher: Publisher | None = None
        self.readers: dict[str, StreamReader] = {}
        self.subscriber: Subscriber | None = None
        self.watched: set[str] = set()
        self.listening = False
        #: a ``listen()`` is on its way (asyncio: a task not run yet)
        self.listen_soon = False
        #: set once each reader's start is fixed (see ``watch``)
        self._pinned: dict[str, Any] = {}
        self.pin_failed_at = pin_failed_at
        #: held while tasks start and stop
        self.lock = threading.RLock()

    def _parts(self) -> tuple[Any, Any, Any, Any, Any]:
        mgr = self._mgr
        return mgr._connector, mgr._runtime, mgr.options, mgr._stats, \
            mgr._log

    def start_publisher(self) -> Publisher:
        """The publisher, started at first use; once closed, one that
        drops what it is given (see ``RedisStreamsManager.close``)."""
        with self.lock:
            if self.publisher is None:
                self.publisher = Publisher(*self._parts())
                self.publisher.unread = Unread(self._read_position, Remote(
                    self._mgr._connector, self._mgr.uid,
                    self._mgr.options.max_len, self._mgr._log))
                if self._mgr._closed:
                    self.publisher.closed = True
                else:
                    self.publisher.start()
            return self.publisher

    def listen(self) -> Steps[None]:
        """Start the subscriber and a reader per namespace's stream;
        every caller waits (bounded) for the subscriptions, since its
        request's answers come on them."""
        with self.lock:
            if self._mgr._closed:
                return
            first = not self.listening
            if first:
                self.listening = True
                self.subscriber = Subscriber(
                    *self._parts(), self._mgr._inbound.on_pubsub)
                self.subscriber.start()
            subscriber = self.subscriber
        if first:
            for namespace in self._mgr._known_namespaces():
                yield from self.watch(namespace, wait=False)
        if subscriber is not None:
            yield from subscriber.wait_subscribed(SUBSCRIBE_WAIT)

    def watch(self, namespace: str, wait: bool = True) -> Steps[None]:
        """Subscribe to the namespace's channels and tail its stream.

        The first connection to a namespace waits here, before python-
        socketio accepts it, for what correctness needs: the reader's start
        fixed (``_pin``), so that what other servers broadcast after the
        client was accepted reaches it; and the SUBSCRIBE sent, so that
        their requests (``fetch_sockets``, acks) made after it see it. Each
        wait is bounded (``PIN_TIMEOUT``, ``SUBSCRIBE_WAIT``) and skipped
        while Redis is failing: a frozen Redis holds a connection 1.5 s
        at most, and only the first. Connections that come while the
        first waits for the pin wait for it too."""
        subscriber = self.subscriber
        runtime = self._mgr._runtime
        with self.lock:
            if subscriber is None or self._mgr._closed:
                return
            key = self.stream(namespace)
            pinned = self._pinned.get(key)
            if namespace in self.watched and pinned is not None and \
                    pinned.is_set():
                return
            wake = None
            if namespace not in self.watched:
                self.watched.add(namespace)
                prefix = self._mgr.options.channel_prefix
                private = protocol.private_channel(prefix, namespace,
                                                   self._mgr.uid)
                wake = subscriber.add(
                    protocol.public_channel(prefix, namespace), private,
                    own=private)
            reader = None
            if key not in self.readers:
                reader = StreamReader(key, *self._parts(),
                                      self._mgr._inbound.on_entry,
                                      uid=self._mgr.uid)
                self.readers[key] = reader
                self._pinned[key] = pinned = runtime.event()
        if wake is not None:  # the subscriber waits for messages
            self._wake(wake, namespace)
        if reader is not None and pinned is not None:
            try:
                yield from self._pin(reader)
            finally:
                pinned.set()
            reader.start()
        elif pinned is not None and not pinned.is_set():
            yield partial(runtime.wait, pinned, PIN_TIMEOUT + 0.5)
        if wait:
            yield from subscriber.wait_subscribed(SUBSCRIBE_WAIT)

    def _pin(self, reader: StreamReader) -> Steps[None]:
        """Fix the reader's start at the stream's end now, so that what is
        written after this server accepted a client reaches it (Node keeps
        reading from ``$`` until a first entry arrives and may miss some).
        If Redis does not answer within ``PIN_TIMEOUT`` (or did not, less
        than ``PIN_RETRY_AFTER`` s ago), the reader starts at entries
        written from now on by this host's clock."""
        if time.monotonic() - self.pin_failed_at < PIN_RETRY_AFTER:
            reader.last_id = from_now()
            return
        try:
            yield from reader.pin(PIN_TIMEOUT)
        except Exception as exc:
            self.pin_failed_at = time.monotonic()
            self._mgr._log.warning(
                'cannot reach Redis %s yet (%s: %s); reading from now on '
                'by the clock, will keep trying',
                self._mgr._connector.describe(), type(exc).__name__, exc)

    def _read_position(self, stream: str) -> str | None:
        """The last entry this server's reader of ``stream`` read, None
        unless one is reading it (see :mod:`.pressure`): running, its
        start pinned, not failing. (Not ``connected``: that is set once
        its first XREAD returns, the first entry of a burst; meanwhile a
        fast publisher would write past ``max_len`` unheld.)"""
        reader = self.readers.get(stream)
        if reader is None or not reader.running or reader.failures \
                or reader.trouble:
            return None
        return reader.last_id

    def stream(self, namespace: str) -> str:
        opts = self._mgr.options
        return protocol.stream_key(opts.stream_name, opts.stream_count,
                                   namespace)

    def publish(self, namespace: str, type_: int, data: Any,
                on_written: Callable | None = None) -> Steps[None]:
        """Queue a message: stream-borne types to the namespace's stream,
        requests (BROADCAST with ack, FETCH_SOCKETS, SERVER_SIDE_EMIT) to
        its public channel, as Node's ``isEphemeral`` decides. Returns the
        publisher's ``put`` steps (a full buffer waits for room): the
        message is encoded at the call, as it is made."""
        ephemeral = type_ in (T.FETCH_SOCKETS, T.SERVER_SIDE_EMIT) or (
            type_ == T.BROADCAST and 'requestId' in data)
        if ephemeral:
            return self.send_pubsub(protocol.public_channel(
                self._mgr.options.channel_prefix, namespace), Message(
                    type=type_, data=data, uid=self._mgr.uid, nsp=namespace))
        return self.append(namespace, self.entry(namespace, type_, data),
                           on_written)

    def entry(self, namespace: str, type_: int, data: Any,
              text: str | None = None) -> dict:
        """The fields of a stream entry of ours (``text``: the JSON of
        ``data``, made already)."""
        return protocol.encode_entry(
            Message(type=type_, data=data, uid=self._mgr.uid, nsp=namespace),
            self._mgr.options.only_plaintext, text)

    def broadcast_entry(self, namespace: str, data: str) -> dict:
        """``entry(namespace, T.BROADCAST, None, data)`` of a namespace
        checked already (``arguments.namespace``), made directly: the
        fields of every emit, in ``encode_entry``'s order."""
        return {'uid': self._mgr.uid, 'nsp': namespace,
                'type': _BROADCAST_TYPE, 'data': data}

    def append(self, namespace: str, fields: dict,
               on_written: Callable | None = None) -> Steps[None]:
        """Queue an ``XADD`` of ``fields`` (see ``publish``)."""
        return self.start_publisher().put(Item(
            'xadd', self.stream(namespace), fields, on_written))

    def send_pubsub(self, channel: str, message: Message) -> Steps[None]:
        """Queue ``message`` to a PUB/SUB channel (``put``'s steps)."""
        return self.start_publisher().put(self._pubsub_item(channel,
                                                            message))

    def _pubsub_item(self, channel: str, message: Message) -> Item:
        kind = 'spublish' if self._mgr.options.use_sharded_pubsub \
            else 'publish'
        return Item(kind, channel, protocol.encode_pubsub(message))

    def _wake(self, channel: str, namespace: str) -> None:
        """Wake the subscriber for new channels: a message of ours on
        ``channel``, which it drops. Best effort, it never waits: with
        the buffer full, none (the subscriber looks again within its
        ``IDLE_POLL``; a connection waits ``SUBSCRIBE_WAIT`` at most)."""
        publisher = self.start_publisher()
        if not publisher.closed:
            publisher.offer(self._pubsub_item(channel, Message(
                type=T.HEARTBEAT, data=None, uid=self._mgr.uid,
                nsp=namespace)))

    def close(self, timeout: float) -> Steps[None]:
        """Flush the queue, stop the tasks (within about ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        tasks = [t for t in [*self.readers.values(), self.subscriber]
                 if t is not None]
        if self.publisher is not None:
            yield from self.publisher.close(timeout)
        for task in tasks:
            task.stop()
        yield from self._mgr._requests.close()
        # stopped tasks end at once, but on a loaded host the flush may
        # have used the time: a second at least for them to end
        deadline = max(deadline, time.monotonic() + 1.0)
        for task in tasks:
            if not (yield from task.join(max(deadline - time.monotonic(),
                                             0.1))):
                self._mgr._log.warning(
                    '%s: still running after close(), cut short and not '
                    'ended (it ends once the command it waits in returns)',
                    task.what)
        if self.publisher is None or not self.publisher.failures:
            yield from self._forget_positions()

    def _forget_positions(self) -> Steps[None]:
        """Delete the readers' positions in Redis (:mod:`.positions`), on
        a connection that waits ``FORGET_TIMEOUT`` s at most."""
        readers = [r for r in self.readers.values() if r.reported]
        if not readers:
            return
        try:
            client = self._mgr._connector.new_client(
                socket_timeout=FORGET_TIMEOUT,
                socket_connect_timeout=FORGET_TIMEOUT, retry=None)
        except Exception:  # a cluster with no seed answering: no matter
            return
        try:
            for reader in readers:
                yield from reader.forget_position(client)
        finally:
            yield partial(close_client, client, self._mgr._log.debug)

    def streams(self) -> dict[str, dict]:
        """Per stream key read: ``lag`` (entries not read yet) and
        ``last_id`` (the last entry read, None before the first read)."""
        return {key: {'lag': reader.lag, 'last_id': reader.last_id}
                for key, reader in list(self.readers.items())}

    def lag(self) -> int:
        return sum(reader.lag for reader in list(self.readers.values()))

    def healthy(self) -> bool:
        """The tasks connected, the readers keeping up (see
        ``RedisStreamsManager.healthy``)."""
        publisher_ok = self.publisher is None or not self.publisher.failures
        tasks: list[Any] = [*self.readers.values()]
        if self.subscriber is not None:
            tasks.append(self.subscriber)
        return publisher_ok and all(t.failures == 0 for t in tasks) and \
            not any(r.trouble for r in list(self.readers.values())) and \
            self.lag() < self._mgr.options.max_len / 2
