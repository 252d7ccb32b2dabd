"""README.rst's Python code blocks run as written, against a private Redis.

Every ``.. code-block:: python`` block runs, unless the line before it is
the comment ``.. readme-test: skip`` (for an illustrative fragment). A
block that defines ``app`` is a server quickstart: two copies are served
and the README's client (the block that makes a ``socketio.Client``) talks
across them; the threaded gunicorn command the README gives for it serves
it too, and the Flask one runs as a script (Werkzeug). An asyncio one
(``socketio.AsyncServer``) is served as the README says, twice: the FastAPI
app by its uvicorn commands (one with ``--workers``), the aiohttp one as a
script. The others run as scripts. ``redis://localhost:6379/0`` becomes
the private server's URL and ``http://127.0.0.1:5000`` the served app's.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from .asyncmode import ASYNC_MODE
from .nodes import serve
from .servers import free_port, start_listening

README = os.path.join(os.path.dirname(__file__), os.pardir, 'README.rst')
REDIS_URL = 'redis://localhost:6379/0'
APP_URL = 'http://127.0.0.1:5000'
SKIP = '.. readme-test: skip'


@dataclass
class Block:
    line: int
    code: str
    skip: bool

    @property
    def is_server(self) -> bool:
        return re.search(r'^app = ', self.code, re.M) is not None

    @property
    def is_async(self) -> bool:
        return 'socketio.AsyncServer(' in self.code

    @property
    def is_client(self) -> bool:
        return 'socketio.Client(' in self.code

    def with_urls(self, redis_url: str, app_url: str = APP_URL) -> str:
        code = self.code.replace(REDIS_URL, redis_url).replace(
            APP_URL, app_url)
        assert 'localhost:6379' not in code
        assert not re.search(r':5000\b', code)
        return code


def text() -> str:
    with open(README, encoding='utf-8') as f:
        return f.read()


def blocks(source: str | None = None) -> list[Block]:
    """The ``.. code-block:: python`` blocks of README.rst (or of
    ``source``), dedented."""
    lines = (text() if source is None else source).split('\n')
    found = []
    for i, line in enumerate(lines):
        if line.strip() != '.. code-block:: python':
            continue
        indent = len(line) - len(line.lstrip())
        before = [x.strip() for x in lines[:i] if x.strip()]
        body = []
        for row in lines[i + 1:]:
            if row.strip() and len(row) - len(row.lstrip()) <= indent:
                break
            body.append(row)
        width = min(len(r) - len(r.lstrip()) for r in body if r.strip())
        code = '\n'.join(r[width:] for r in body).strip() + '\n'
        found.append(Block(i + 1, code, bool(before) and before[-1] == SKIP))
    return found


def runnable(kind: str) -> list:
    chosen = [b for b in blocks() if not b.skip and (
        (kind == 'server' and b.is_server and not b.is_async) or
        (kind == 'async-server' and b.is_server and b.is_async) or
        (kind == 'client' and b.is_client) or
        (kind == 'script' and not b.is_server and not b.is_client))]
    return [pytest.param(b, id=f'line{b.line}') for b in chosen]


def client_block() -> Block:
    [client] = [b for b in blocks() if b.is_client and not b.skip]
    return client


def run_client(redis_url: str, app_url: str) -> str:
    """The README's client, as a script: it sends 'hello' and waits for
    the broadcast to come back."""
    result = subprocess.run(
        [sys.executable, '-c', client_block().with_urls(redis_url, app_url)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readme_has_the_quickstarts():
    found = blocks()
    assert len(runnable('server')) == 2
    assert len(runnable('async-server')) == 2
    assert len(runnable('client')) == 1
    assert len(runnable('script')) >= 2
    assert all(REDIS_URL in b.code for b in found if b.is_server)
    assert APP_URL in client_block().code


def test_blocks_are_parsed_and_skipped_as_marked():
    found = blocks('''Text::

    not_python()

.. code-block:: python

    import os

    print(os.sep)

text

.. readme-test: skip

.. code-block:: python

    fragment(...)
''')
    assert [(b.code, b.skip) for b in found] == [
        ('import os\n\nprint(os.sep)\n', False), ('fragment(...)\n', True)]


@pytest.mark.parametrize('block', runnable('script'))
def test_script_block_runs(block, redis_server):
    result = subprocess.run(
        [sys.executable, '-c', block.with_urls(redis_server.url)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr


def load(block: Block, redis_url: str) -> dict:
    """Run a server quickstart as a module (its ``__main__`` part not)."""
    namespace: dict = {'__name__': 'readme_app'}
    exec(compile(block.with_urls(redis_url), f'README.rst:{block.line}',
                 'exec'), namespace)
    return namespace


def manager_of(namespace: dict):
    server = namespace['sio'] if 'sio' in namespace else \
        namespace['socketio'].server
    return server.manager


@pytest.mark.parametrize('block', runnable('server'))
def test_quickstart_servers_and_client_talk_across(block, redis_server,
                                                   clients):
    apps = [load(block, redis_server.url) for _ in range(2)]
    picked = manager_of(apps[0]).server.async_mode
    if picked != ASYNC_MODE:
        for app in apps:
            manager_of(app).close(timeout=0)
        pytest.skip(f'the quickstart picks {picked} (installed), the '
                    f'tests serve {ASYNC_MODE}')
    https = [serve(app['app']) for app in apps]
    try:
        from .nodes import Client
        clients.append(Client(https[0].url, ['/']))
        out = run_client(redis_server.url, https[1].url)
        assert out == 'got hello\n'
        assert clients[0].wait_for('chat') == [('hello',)]
    finally:
        for http, app in zip(https, apps):
            http.stop()
            manager_of(app).close(timeout=2)


def gunicorn_threads_command(module: str) -> list[str]:
    """The README's threaded gunicorn command for ``module``."""
    match = re.search(rf'^ *(gunicorn -w 1 --threads \d+ -b \S+ '
                      rf'{module}:app)', text(), re.M)
    assert match, f'no threaded gunicorn command for {module}'
    return match.group(1).split()


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) for m in ('eventlet', 'gevent')),
    reason='with eventlet or gevent installed, the quickstarts pick them '
           '(as the README says), not the threaded worker')
@pytest.mark.parametrize('block', runnable('server'))
def test_quickstart_under_the_readmes_gunicorn_command(block, redis_server,
                                                       tmp_path):
    module = 'sio_app' if 'sio = socketio.Server' in block.code \
        else 'flask_app'
    (tmp_path / f'{module}.py').write_text(block.with_urls(redis_server.url))
    port = free_port()
    command = gunicorn_threads_command(module)
    command[command.index('-b') + 1] = f'127.0.0.1:{port}'
    serve_and_talk([sys.executable, '-m', 'gunicorn', *command[1:]], port,
                   redis_server.url, tmp_path)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM; a server that is still up 10 s later fails the test."""
    proc.terminate()
    proc.wait(10)


def serve_and_talk(command: list, port: int, redis_url: str, cwd) -> None:
    """Start a server with ``command``; the README's client talks to it."""
    proc = start_listening(command, port, cwd)
    try:
        assert run_client(redis_url,
                          f'http://127.0.0.1:{port}') == 'got hello\n'
    finally:
        stop(proc)


def async_commands(code: str, tmp_path) -> list:
    """The two commands the README serves an asyncio quickstart (``code``)
    with, on free ports: [(command, port)]. FastAPI: its uvicorn commands,
    ``fastapi_app.py`` in ``tmp_path``; aiohttp: ``python aiohttp_app.py``,
    the port in its code changed."""
    if 'FastAPI(' in code:
        (tmp_path / 'fastapi_app.py').write_text(code)
        found = re.findall(r'^ *(uvicorn fastapi_app:app --port 500\d\b.*?)'
                           r'$', text(), re.M)
        assert len(found) == 2 and '--workers' in found[1], found
        commands = []
        for line in found:
            words, port = line.split(), free_port()
            words[words.index('--port') + 1] = str(port)
            commands.append(([sys.executable, '-m', *words], port))
        return commands
    assert 'python aiohttp_app.py' in text()
    assert 'port=5000' in code
    commands = []
    for n in range(2):
        port = free_port()
        script = tmp_path / f'aiohttp_app{n}.py'
        script.write_text(code.replace('port=5000', f'port={port}'))
        commands.append(([sys.executable, str(script)], port))
    return commands


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) for m in ('eventlet', 'gevent')),
    reason='with eventlet or gevent installed, socketio.run serves with '
           'them, not Werkzeug')
def test_flask_quickstart_runs_as_a_script(redis_server, tmp_path):
    """``python flask_app.py``: Werkzeug's server, as the README says."""
    [block] = [b for b in blocks() if 'socketio.run(app' in b.code]
    port = free_port()
    assert 'port=5000' in block.code
    script = tmp_path / 'flask_app.py'
    script.write_text(block.with_urls(redis_server.url).replace(
        'port=5000', f'port={port}'))
    serve_and_talk([sys.executable, str(script)], port, redis_server.url,
                   tmp_path)


@pytest.mark.parametrize('block', runnable('async-server'))
def test_async_quickstart_served_as_the_readme_says(block, redis_server,
                                                    tmp_path, clients):
    """Two copies served by the README's commands: a client of one gets
    what the README's client sends through the other."""
    commands = async_commands(block.with_urls(redis_server.url), tmp_path)
    procs: list = []
    try:
        procs += [start_listening(command, port, tmp_path)
                  for command, port in commands]
        from .nodes import Client
        clients.append(Client(f'http://127.0.0.1:{commands[0][1]}', ['/']))
        out = run_client(redis_server.url,
                         f'http://127.0.0.1:{commands[1][1]}')
        assert out == 'got hello\n'
        assert clients[0].wait_for('chat') == [('hello',)]
    finally:
        for proc in procs:
            stop(proc)
