"""The manager's tasks behave under the async mode of the test run."""
from __future__ import annotations

import asyncio
import os

import pytest

from socketio_streams.runtime import Event

from .asyncmode import ASYNC_MODE
from .nodes import Node


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


@pytest.mark.skipif(ASYNC_MODE != 'eventlet',
                    reason='about eventlet\'s hub (SIO_ASYNC_MODE=eventlet)')
def test_close_leaves_no_green_thread_waiting_on_a_closed_socket(
        make_node, clients):
    """Under eventlet, stopping a server wakes its reader blocked in
    ``XREAD`` on the socket the manager closed; a waiter left behind would
    hang, and break whatever reuses the descriptor (a subprocess's pipe:
    "Second simultaneous read")."""
    from eventlet import hubs

    sender, receiver = make_node(), make_node()
    clients.append(receiver.client())
    sender.sio.emit('ping', 1)
    clients[0].wait_for('ping')  # the receiver's reader is in XREAD again
    clients[0].disconnect()
    receiver.stop()
    hub = hubs.get_hub()
    stale = [fd for bucket in (hub.listeners[hub.READ],
                               hub.listeners[hub.WRITE])
             for fd in bucket if _closed(fd)]
    assert stale == []


@pytest.mark.skipif(ASYNC_MODE != 'threading',
                    reason='forks a threaded test process (threading only)')
def test_a_forked_worker_is_a_server_of_its_own(redis_server, nodes,
                                                clients):
    """gunicorn ``--preload`` forks workers from a process that made the
    manager, here one already listening: a worker must be a server of its
    own, or the others take its packets for their own and drop them."""
    nodes.append(Node(redis_server.url))
    nodes[0].mgr.on('job', lambda: None)  # listening before the fork
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: emit once the parent has a client
        try:
            os.read(ready_r, 1)
            nodes[0].forked()
            nodes[0].mgr.emit('from-worker', nodes[0].mgr.uid)
            nodes[0].mgr.flush(10)
        finally:
            os._exit(0)
    try:
        clients.append(nodes[0].client())  # after the fork: the parent's
        os.write(ready_w, b'x')
        (worker_uid,), = clients[0].wait_for('from-worker', timeout=10)
        assert worker_uid != nodes[0].mgr.uid
    finally:
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)


def test_an_asyncio_event_wakes_its_waiters_times_out_and_is_cancellable():
    """``AsyncRuntime``'s event: a wait ends when it is set (every
    waiter), or after its timeout with False; a cancelled wait raises
    CancelledError, even when the event was set just before; nothing is
    left behind (no waiter, no live timer)."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        event = Event()
        assert await event.wait(0.01) is False
        waiters = [asyncio.ensure_future(event.wait(t)) for t in (None, 5)]
        await asyncio.sleep(0)
        event.set()
        assert await asyncio.gather(*waiters) == [True, True]
        assert await event.wait(0) is True
        event.clear()
        assert not event.is_set()
        for set_first in (False, True):
            waiter = asyncio.ensure_future(event.wait(5))
            await asyncio.sleep(0)
            if set_first:
                event.set()
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        assert event._waiters == []
        assert all(timer.cancelled() for timer in loop._scheduled)

    asyncio.run(main())
