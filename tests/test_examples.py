"""The examples run as README.rst says."""
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import socketio

from .nodes import wait_until
from .servers import free_port, start_listening

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')


def chat_command(kind: str, port: int) -> list:
    """How README.rst and the examples' docstrings run each chat server:
    ``chat.py PORT`` (Flask-SocketIO), ``uvicorn examples.fastapi_chat:app``
    and ``python examples/fastapi_chat.py --port`` (FastAPI), from the
    checkout's root."""
    return {'flask': [sys.executable, 'examples/chat.py', str(port)],
            'uvicorn': [sys.executable, '-m', 'uvicorn',
                        'examples.fastapi_chat:app', '--port', str(port)],
            'fastapi': [sys.executable, 'examples/fastapi_chat.py',
                        '--port', str(port)]}[kind]


def start_chats(kinds: list, redis_url: str) -> tuple:
    """A chat server of each kind on a free port, listening: (ports,
    processes)."""
    ports = [free_port() for _ in kinds]
    env = {**os.environ, 'REDIS_URL': redis_url, 'SIO_ASYNC_MODE': ''}
    procs: list = []
    try:
        for kind, port in zip(kinds, ports):
            procs.append(start_listening(chat_command(kind, port), port,
                                         ROOT, env))
    except BaseException:
        stop_all(procs)
        raise
    return ports, procs


def stop_all(procs: list) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(10)


@pytest.mark.parametrize('options', [[], ['--async']],
                         ids=['flask', 'fastapi'])
def test_the_demo_tours_a_cluster_and_loses_nothing(redis_server, options):
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, 'demo.py'), *options],
        env={**os.environ, 'REDIS_URL': redis_server.url,
             'SIO_ASYNC_MODE': ''},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    kind = 'FastAPI (asyncio)' if options else 'Flask-SocketIO'
    assert f'3 {kind} servers on one Redis' in out
    assert out.count("got 'hello from the first server'") == 3
    assert out.count('got it (in blue)') == 2
    assert out.count('pong from client of') == 3
    assert 'lost 0, duplicated 0' in out


def test_the_demo_starts_and_removes_its_own_redis():
    env = {k: v for k, v in os.environ.items() if k != 'REDIS_URL'}
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, 'demo.py')], env=env,
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    kind = 'Redis' if shutil.which('redis-server') else 'Valkey'
    assert result.stdout.startswith(f'started a private {kind} ')
    assert f'private {kind} stopped and removed' in result.stdout


def test_the_demo_refuses_a_busy_port():
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, 'demo.py'), '--serve',
             '--port', str(port)], capture_output=True, text=True,
            timeout=60)
    assert result.returncode != 0
    assert result.stderr == (
        f'demo: port {port} is already in use (by another service?); use '
        f'--port N for N and N+1, or --port 0 for free ports\n')
    assert 'chat servers' not in result.stdout
    assert 'started a private' not in result.stdout  # checked first


def children(pid: int) -> set:
    """PIDs of the direct children of ``pid`` (Linux /proc)."""
    found: set = set()
    for task in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{task}/children') as f:
            found |= {int(p) for p in f.read().split()}
    return found


def alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rpartition(')')[2].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_sigterm_stops_everything_the_demo_started():
    env = {k: v for k, v in os.environ.items() if k != 'REDIS_URL'}
    demo = subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, 'demo.py'), '--serve',
         '--port', '0'], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    started: set = set()
    try:
        first = demo.stdout.readline()
        assert first.startswith('started a private '), first
        urls = demo.stdout.readline()
        assert urls.startswith('chat servers: http://127.0.0.1:'), urls
        started = children(demo.pid)
        assert len(started) == 3  # the private server and two chat servers
        demo.send_signal(signal.SIGTERM)
        out, err = demo.communicate(timeout=30)
        assert demo.returncode == 128 + signal.SIGTERM, err
        assert 'stopped and removed' in out
        wait_until(lambda: not any(alive(p) for p in started), 10,
                   'the demo\'s children to end')
    finally:
        demo.kill()
        for pid in started:  # if the demo failed to, not to leak them
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_emitter_example_reaches_a_client(redis_server, make_node,
                                              clients):
    node = make_node()
    clients.append(node.client())
    subprocess.run([sys.executable, os.path.join(EXAMPLES, 'emitter.py'),
                    'hi', 'there'], check=True, timeout=30,
                   env={**os.environ, 'REDIS_URL': redis_server.url})
    clients[0].wait_for('said')
    assert clients[0].events('said') == [({'text': 'hi there',
                                           'server': 'emitter'},)]


def test_the_fastapi_chat_talks_across_servers_and_kinds(redis_server):
    """Run as its docstring says (under uvicorn, and as a script), with
    the Flask chat on the same Redis: a message sent to one reaches the
    clients of the others, tagged with the server it came through."""
    ports, procs = start_chats(['uvicorn', 'fastapi', 'flask'],
                               redis_server.url)
    clients = [socketio.Client() for _ in ports]
    received: list = [[] for _ in ports]
    try:
        for client, port, got in zip(clients, ports, received):
            client.on('said', lambda msg, *offset, got=got: got.append(msg))
            client.connect(f'http://127.0.0.1:{port}',
                           transports=['websocket'])
        answers = [c.call('hello', f'user {n}', timeout=10)
                   for n, c in enumerate(clients)]
        labels = [a['server'] for a in answers]
        assert labels == [f'{socket.gethostname()}:{p}' for p in ports]
        for n, client in enumerate(clients):
            client.emit('say', f'from {n}')
            wait_until(lambda: all(len(got) == n + 1 for got in received),
                       15, f'message {n} on every server')
            assert [got[-1]['text'] for got in received] == [f'from {n}'] * 3
            assert {got[-1]['server'] for got in received} == {labels[n]}
        people = clients[0].call('who', timeout=10)
        assert sorted(p['server'] for p in people) == sorted(labels)
        ping = clients[1].call('ping-servers', timeout=10)
        assert sorted(s['server'] for s in ping['servers']) == sorted(
            labels[:1] + labels[2:])
    finally:
        stop_all(procs)
        for client in clients:
            client.disconnect()
