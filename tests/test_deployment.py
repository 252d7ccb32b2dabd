"""Deployed with gunicorn: two instances of a Flask-SocketIO app, one async
worker each, are one Socket.IO cluster through Redis; so are the workers of
one ``gunicorn --preload``.

Each worker class is exercised in the tox env of its async mode:
``-k gevent`` in ``py311-gevent`` (current gunicorn), ``-k eventlet`` in
``py311-eventlet`` (gunicorn < 26, which still has the eventlet worker),
``-k sync`` under threading.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .asyncmode import ASYNC_MODE
from .nodes import Client
from .servers import free_port, stop_process, wait_serving

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
WORKERS = ['gevent', 'eventlet']


def _need_worker(worker: str) -> None:
    """Skip unless this env runs ``worker``: its async mode, the library
    and a gunicorn that still has the worker class."""
    if ASYNC_MODE != worker:
        pytest.skip(f'gunicorn -k {worker} runs in the py311-{worker} env '
                    f'(SIO_ASYNC_MODE={worker}), not under {ASYNC_MODE}')
    pytest.importorskip(worker)
    gunicorn = pytest.importorskip('gunicorn')
    from gunicorn.workers import SUPPORTED_WORKERS
    if worker not in SUPPORTED_WORKERS:
        pytest.skip(f'gunicorn {gunicorn.__version__} has no {worker} '
                    f'worker (removed in gunicorn 26)')


def _no_control_socket() -> list[str]:
    """gunicorn >= 25 opens a control socket at one fixed path per user;
    two instances (or a developer's own gunicorn) must not share it."""
    from gunicorn.config import Config
    if 'control_socket_disable' in Config().settings:
        return ['--no-control-socket']
    return []


class Gunicorn:
    """One gunicorn instance that we own, run from the repository root:
    ``gunicorn -k <worker> <args>``, bound to a free port through ``BIND``
    (read by ``examples/gunicorn.conf.py``) or ``-b``."""

    def __init__(self, worker: str, args: list[str], redis_url: str,
                 log: Path):
        self.worker = worker
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = log
        bind = f'127.0.0.1:{self.port}'
        if '-c' not in args:
            args = ['-b', bind, '-w', '1', *args]
        cmd = [sys.executable, '-m', 'gunicorn', '-k', worker,
               '--graceful-timeout', '5', *_no_control_socket(), *args]
        env = dict(os.environ, REDIS_URL=redis_url, BIND=bind,
                   SIO_ASYNC_MODE=worker if worker in WORKERS
                   else 'threading',  # -k sync
                   PYTHONPATH=str(ROOT))  # the socketio_streams under test
        with open(log, 'wb') as out:
            self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        """Until the worker answers an Engine.IO handshake."""
        wait_serving(self.proc, self.url, self.output, START_TIMEOUT)

    def output(self) -> str:
        return self.log.read_text(errors='replace')[-3000:]

    def terminate(self) -> None:
        """Ask our gunicorn to stop (SIGTERM)."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        """Stop our gunicorn: SIGTERM, then SIGKILL after 15 s."""
        stop_process(self.proc, grace=15)


@pytest.fixture
def preloaded(redis_server, tmp_path):
    """``gunicorn --preload -w 2 -k sync``: the app, and its manager, are
    made once in the master and forked into both workers. A sync worker
    serves one connection at a time: a second websocket client goes to the
    other worker."""
    if ASYNC_MODE != 'threading':
        pytest.skip(f'gunicorn -k sync runs under threading, not '
                    f'{ASYNC_MODE}')
    pytest.importorskip('gunicorn')
    instance = Gunicorn('sync', ['--preload', '-w', '2', '--chdir',
                                 'tests/apps', 'chat_app:app'],
                        redis_server.url, tmp_path / 'gunicorn.log')
    try:
        instance.wait_ready()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def gunicorns(request, tmp_path):
    """``gunicorns(worker, args)`` -> two started instances on one Redis;
    all stopped afterwards."""
    made: list[Gunicorn] = []

    def start(worker: str, args: list[str]) -> list[Gunicorn]:
        _need_worker(worker)
        redis_url = request.getfixturevalue('redis_server').url
        pair = [Gunicorn(worker, args, redis_url,
                         tmp_path / f'gunicorn-{len(made) + i}.log')
                for i in range(2)]
        made.extend(pair)
        for instance in pair:
            instance.wait_ready()
            assert f'Using worker: {worker}' in instance.output()
        return pair

    yield start
    for instance in made:
        instance.terminate()
    for instance in made:
        instance.stop()


@pytest.mark.deployment  # gunicorns() asks for redis_server
@pytest.mark.parametrize('worker', WORKERS)
def test_two_gunicorn_instances_share_broadcasts(gunicorns, clients, worker):
    """A client of each instance sees what the other instance's client
    said, and what it said itself, once each and in order."""
    first, second = gunicorns(worker, ['--chdir', 'tests/apps',
                                       'chat_app:app'])
    a = Client(first.url, ['/'])
    clients.append(a)
    b = Client(second.url, ['/'])
    clients.append(b)
    a.sio.emit('say', 'from a')
    b.wait_for('said', timeout=10)
    b.sio.emit('say', 'from b')
    a.wait_for('said', count=2, timeout=10)
    a.sio.emit('say', 'end')  # comes after any duplicate of 'from a'
    b.wait_for('said', count=3, timeout=10)
    a.wait_for('said', count=3, timeout=10)
    expected = [({'text': text, 'from': client.sid()},)
                for text, client in [('from a', a), ('from b', b),
                                     ('end', a)]]
    assert a.events('said') == expected
    assert b.events('said') == expected


@pytest.mark.deployment  # gunicorns() asks for redis_server
@pytest.mark.parametrize('worker', WORKERS)
def test_the_readme_gunicorn_command_runs_the_example_chat(gunicorns,
                                                           clients, worker):
    """README's ``gunicorn -c examples/gunicorn.conf.py -k <worker>
    --chdir examples chat:app``, twice: a chat crosses the instances."""
    first, second = gunicorns(worker, ['-c', 'examples/gunicorn.conf.py',
                                       '--chdir', 'examples', 'chat:app'])
    a = Client(first.url, ['/'])
    clients.append(a)
    b = Client(second.url, ['/'])
    clients.append(b)
    a.sio.emit('say', 'hello')
    (said,) = b.wait_for('said', timeout=10)  # (message, stream offset)
    assert said[0]['text'] == 'hello'
    assert said[0]['server'].endswith(f':{first.port}')  # via the first


def test_preloaded_workers_are_servers_of_their_own(preloaded, clients):
    """Forked workers of one ``gunicorn --preload`` broadcast to each
    other: each has its own identity (with the master's, each took the
    other's packets for its own and dropped them)."""
    a = Client(preloaded.url, ['/'])
    clients.append(a)
    b = Client(preloaded.url, ['/'])
    clients.append(b)
    assert a.sio.call('pid', timeout=5) != b.sio.call('pid', timeout=5)
    a.sio.emit('say', 'hello')
    b.wait_for('said', timeout=10)
    a.wait_for('said', timeout=10)
    b.sio.emit('say', 'back')
    a.wait_for('said', count=2, timeout=10)
