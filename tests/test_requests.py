"""Requests to other servers: the bookkeeping without Redis, and the waits
(steps) driven in the asyncio world with a real Redis."""
import asyncio
import threading
import types

import pytest

from socketio_streams import cluster, handlers, protocol
from socketio_streams.cluster import (AckExpiry, BroadcastAcks, ClientAcks,
                                      Pending, Request, Requests, ack_value)
from socketio_streams.exceptions import AckTimeoutError
from socketio_streams.options import Options
from socketio_streams.runtime import AsyncRuntime
from socketio_streams.protocol import Message, MessageType as T
from socketio_streams.steps import arun, run

from . import asyncredis

# --- bookkeeping, no I/O ---


def test_ack_value_is_the_first_argument_or_all_of_them():
    assert ack_value([]) is None
    assert ack_value(['a']) == 'a'
    assert ack_value(['a', 2]) == ('a', 2)


def test_a_request_is_done_when_every_awaited_server_answered():
    event = threading.Event()
    request = Request({'a', 'b'}, 0, event)
    request.on_answer('a', 1)
    request.on_answer('a', 'again')  # the first answer stays
    assert not request.done and not event.is_set()
    assert request.missing() == {'b'}
    request.on_answer('b', 2)
    assert request.done and event.is_set()
    assert request.answers == {'a': 1, 'b': 2}


def test_a_request_stops_waiting_for_servers_that_left():
    request = Request({'a', 'b'}, 0, threading.Event())
    request.on_answer('a', 1)
    request.live({'a', 'c'})  # b left; c came after the request
    assert request.done and request.awaited == {'a'}


def test_a_blind_request_learns_whom_to_wait_for():
    request = Request(set(), 0, threading.Event(), blind=True)
    assert not request.done
    request.live({'a'})
    assert not request.done and request.missing() == {'a'}
    request.on_answer('a', None)
    assert request.done and request.event.is_set()


def test_broadcast_acks_are_done_when_every_client_answered():
    request = BroadcastAcks({'a'}, 0, threading.Event())
    assert request.on_count(cluster.SELF, 1) is False
    assert request.on_ack(cluster.SELF, ['x']) is False
    assert not request.done  # a has not said how many it reached
    request.on_count('a', 2)
    request.on_ack('a', ['y', 1])
    assert not request.done
    request.on_ack('a', [])
    assert request.done and request.event.is_set()
    assert request.acks == ['x', ('y', 1), None]


@pytest.mark.parametrize('single', [True, False])
def test_client_acks_end_with_one_answer_if_single(single):
    acks = ClientAcks(print, 0, single=single)
    assert acks.on_ack('a', [1, 2]) is single
    assert acks.on_count('a', 5) is False


@pytest.mark.parametrize('single', [True, False])
def test_each_answer_to_an_emit_calls_its_callback(single):
    """The handler calls it (it may be a coroutine function), once per
    answer; a single socket's request ends with the first."""
    calls: list = []
    requests = Requests(None, Options(), 'me')
    requests.add('r1', ClientAcks(lambda *args: calls.append(args), 1e12,
                                  single=single))
    ctx = types.SimpleNamespace(requests=requests)
    for packet in (1, 2):
        run(handlers.on_broadcast_ack(ctx, Message(
            T.BROADCAST_ACK, {'requestId': 'r1', 'packet': packet},
            'other')))
    assert calls == ([(1,)] if single else [(1,), (2,)])


def test_ack_expiry_forgets_the_expired_and_those_over_the_limit():
    expiry = AckExpiry(limit=2)
    expiry.add(30.0, 's1', 1)
    expiry.add(10.0, 's2', 2)
    expiry.add(20.0, 's3', 3)
    assert expiry.due(0.0) == [('s2', 2)]  # over the limit: soonest first
    assert expiry.due(20.0) == [('s3', 3)]
    assert len(expiry) == 1
    assert expiry.due(29.0) == []


def test_pending_drops_expired_requests_on_access():
    pending = Pending()
    pending.add('old', Request(set(), 0.0, threading.Event()))
    fresh = Request(set(), float('inf'), threading.Event())
    pending.add('new', fresh)
    assert len(pending) == 1
    assert pending.get('new') is fresh
    assert pending.get('old') is None and pending.get(None) is None
    pending.discard('new')
    pending.discard(None)
    assert len(pending) == 0


# --- waits in the asyncio world ---

OTHER = 'other0123456789a'


@pytest.fixture
def other_server(redis_server):
    """A server ``OTHER`` listening on namespace '/' (public and private
    channels subscribed); ``.leave()`` unsubscribes it."""
    asyncredis.skip_unless_standalone()
    pubsub = redis_server.client().pubsub()
    prefix = Options().channel_prefix
    pubsub.subscribe(protocol.public_channel(prefix, '/'),
                     protocol.private_channel(prefix, '/', OTHER))
    for _ in range(2):  # both confirmed: Redis counts them
        assert pubsub.get_message(timeout=5)['type'] == 'subscribe'
    pubsub.leave = pubsub.unsubscribe
    yield pubsub
    pubsub.close()


@pytest.fixture
def async_requests(redis_server, monkeypatch):
    """Requests on redis.asyncio clients."""
    asyncredis.skip_unless_standalone()
    monkeypatch.setattr(cluster, 'numsub', asyncredis.numsub)
    monkeypatch.setattr(cluster, 'channels', asyncredis.channels)
    monkeypatch.setattr(cluster, 'close_client', asyncredis.close_client)
    return Requests(asyncredis.AsyncConnector(redis_server.url), Options(),
                    'me')


def _in_loop(requests, main):
    """``main()`` in a debug event loop (never-awaited coroutines and
    misuse of the loop are reported); ``requests`` closed after it."""
    async def whole():
        try:
            return await main()
        finally:
            await arun(requests.close())
            await requests._connector.aclose()
    return asyncio.run(whole(), debug=True)


async def _ticks_during(awaitable):
    """``(result or exception, ticks)``: how many times a concurrent task
    got the loop while ``awaitable`` ran."""
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        result = await awaitable
    except Exception as exc:
        result = exc
    finally:
        task.cancel()
    return result, ticks


def test_server_count_and_live_servers_under_arun(async_requests,
                                                  other_server):
    requests = async_requests

    async def main():
        return (await arun(requests.server_count('/')),
                await arun(requests.live_servers('/')))

    assert _in_loop(requests, main) == (1, {OTHER})


def test_wait_under_asyncio_returns_when_the_answers_come(async_requests,
                                                          other_server):
    requests, runtime = async_requests, AsyncRuntime()

    async def main():
        request_id, request = await arun(requests.open(
            '/', Request, 5.0, runtime.event()))
        assert request.awaited == {OTHER} and len(requests) == 1

        async def answer():
            await asyncio.sleep(0.05)
            request.on_answer(OTHER, 42)

        task = asyncio.ensure_future(answer())  # referenced: not collected
        answers = await arun(requests.wait(
            '/', request_id, request, 5.0, 'test', list, runtime))
        await task
        return answers

    assert _in_loop(requests, main) == {OTHER: 42}
    assert len(requests) == 0


def test_wait_under_asyncio_times_out_without_blocking_the_loop(
        async_requests, other_server):
    requests, runtime = async_requests, AsyncRuntime()
    timeout = cluster.QUERY_TIMEOUT * 0.6  # no membership query meanwhile

    async def main():
        request_id, request = await arun(requests.open(
            '/', Request, timeout, runtime.event()))
        return await _ticks_during(arun(requests.wait(
            '/', request_id, request, timeout, 'test',
            lambda r: ['partial'], runtime)))

    error, ticks = _in_loop(requests, main)
    assert isinstance(error, AckTimeoutError), error
    assert OTHER in str(error) and error.responses == ['partial']
    # waits of MEMBERSHIP_POLL each: a blocking one would give no ticks
    assert ticks >= 2
    assert len(requests) == 0 and set(requests._silent) == {OTHER}


def test_wait_under_asyncio_stops_waiting_for_a_server_that_left(
        async_requests, other_server):
    requests, runtime = async_requests, AsyncRuntime()

    async def main():
        request_id, request = await arun(requests.open(
            '/', Request, 30.0, runtime.event()))
        assert request.awaited == {OTHER}

        async def leave():
            await asyncio.sleep(0.05)
            other_server.leave()  # unsubscribed: it left the cluster

        task = asyncio.ensure_future(leave())  # referenced: not collected
        answers = await arun(requests.wait(
            '/', request_id, request, 30.0, 'test', list, runtime))
        await task
        return answers

    assert _in_loop(requests, main) == {}
