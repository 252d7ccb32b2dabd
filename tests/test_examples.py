"""The examples run as README.rst says."""
import os
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'examples')


def test_the_demo_tours_a_cluster_and_loses_nothing(redis_server):
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, 'demo.py')],
        env={**os.environ, 'REDIS_URL': redis_server.url,
             'SIO_ASYNC_MODE': ''},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
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
    assert result.stdout.startswith('started a private ')
    assert 'private Redis stopped and removed' in result.stdout


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
