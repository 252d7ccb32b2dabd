"""The manager's tasks behave under the async mode of the test run."""
from __future__ import annotations

import os

import pytest

from .asyncmode import ASYNC_MODE


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
