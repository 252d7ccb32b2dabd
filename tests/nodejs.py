"""Node.js peers for the interoperability tests.

``NodeServer`` is a ``tests/js/server.js``: Socket.IO 4.8 with the official
``@socket.io/redis-streams-adapter`` 0.3.1. ``NodeClient`` is a
``tests/js/client.js``: the official ``socket.io-client``. Both are peers
in one ``node tests/js/host.js`` process per test process (``host()``),
driven by JSON lines over its stdin/stdout; the command list is at the top
of each script.
Bytes are sent as ``{"$bin_hex": ...}`` and turned back into ``bytes`` in
what the scripts report, so tests deal in plain Python values.

Only the host process started here is ever stopped, through its own
``Popen``.
"""
from __future__ import annotations

import atexit
import fcntl
import itertools
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Union

JS_DIR = Path(__file__).resolve().parent / 'js'
DEPENDENCIES = ('socket.io', 'socket.io-client', 'redis',
                '@socket.io/redis-streams-adapter', '@socket.io/admin-ui')

Line = Dict[str, Any]
Match = Union[str, Callable[[Line], Any]]


class NodeUnavailable(RuntimeError):
    """Node.js or npm is missing, or ``npm ci`` failed."""


class NodeCommandError(RuntimeError):
    """A script answered a command with ``{"error": ...}``."""

    def __init__(self, name: str, reply: Line):
        super().__init__(f'{name}: {reply.get("error")}')
        self.reply = reply


_install_lock = threading.Lock()
_install_error: NodeUnavailable | None = None


def _installed() -> bool:
    modules = JS_DIR / 'node_modules'
    return all((modules / dep / 'package.json').is_file()
               for dep in DEPENDENCIES)


def npm_ready() -> bool:
    """True once ``tests/js/node_modules`` is installed (``npm ci``, once).

    Raises ``NodeUnavailable`` if node or npm is missing or the install
    failed; a failure is remembered, not retried by every test. A file
    lock keeps test runs side by side (``tox p``) from installing at once.
    """
    global _install_error
    with _install_lock, open(JS_DIR / 'node_modules.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _installed():
            return True
        if _install_error is not None:
            raise _install_error
        npm = shutil.which('npm')
        if npm is None or shutil.which('node') is None:
            _install_error = NodeUnavailable(
                'the Node.js interoperability tests need node (20+) and npm '
                'on PATH, e.g. apt-get install nodejs npm')
            raise _install_error
        proc = subprocess.run(
            [npm, 'ci', '--prefix', str(JS_DIR), '--no-audit', '--no-fund'],
            capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not _installed():
            _install_error = NodeUnavailable(
                f'npm ci --prefix {JS_DIR} failed ({proc.returncode}):\n'
                f'{proc.stderr[-3000:]}')
            raise _install_error
        return True


def to_wire(value: Any) -> Any:
    """Bytes anywhere in ``value`` -> ``{"$bin_hex": ...}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {'$bin_hex': bytes(value).hex()}
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


def from_wire(value: Any) -> Any:
    """``{"$bin_hex": ...}`` anywhere in ``value`` -> bytes."""
    if isinstance(value, dict):
        if list(value) == ['$bin_hex'] and isinstance(value['$bin_hex'], str):
            return bytes.fromhex(value['$bin_hex'])
        return {k: from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


def _camel(name: str) -> str:
    """``stream_name`` -> ``streamName``; camelCase is kept as it is."""
    first, *rest = name.split('_')
    return first + ''.join(part[:1].upper() + part[1:] for part in rest)


def _matches(match: Match, line: Line) -> Any:
    if callable(match):
        return match(line)
    return match in line or match in (
        line.get('event'), line.get('clientEvent'),
        line.get('serverSideEmit'))


class _Host:
    """The one ``node host.js`` of this test process: every ``NodeServer``
    and ``NodeClient`` is a peer in it (loading socket.io, the adapter and
    node-redis costs ~0.45 s of CPU a process: paid once). Lines out carry
    the peer's number; ``host()`` starts it on first use, again if it died.
    """

    def __init__(self) -> None:
        npm_ready()
        node = shutil.which('node') or 'node'
        self.peers: dict[int, _NodeProcess] = {}
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self._eof = False
        self.proc = subprocess.Popen(
            [node, str(JS_DIR / 'host.js')], cwd=str(JS_DIR),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding='utf-8', bufsize=1)
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        return not self._eof and self.proc.poll() is None

    def add(self, peer: _NodeProcess, kind: str, argv: list[str]) -> None:
        with self._lock:
            self.peers[peer.peer] = peer
        self.send({'peer': peer.peer, 'start': kind, 'argv': argv})

    def send(self, message: Line) -> None:
        with self._lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps(message) + '\n')
                self.proc.stdin.flush()
            except (OSError, ValueError):
                raise RuntimeError('node host.js has exited:\n' +
                                   self.tail()) from None

    def tail(self) -> str:
        time.sleep(0.1)  # let the stderr thread catch up
        return ''.join(self.stderr)[-3000:]

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {'raw': raw.rstrip('\n')}
            if not isinstance(line, dict):
                line = {'raw': line}
            with self._lock:
                peer = self.peers.get(line.pop('peer', None))
                if peer is not None and '$exit' in line:
                    del self.peers[peer.peer]
            if peer is None:
                continue
            if '$exit' in line:
                peer.ended(line['$exit'])
            else:
                peer.received(from_wire(line))
        self._eof = True
        with self._lock:
            peers, self.peers = list(self.peers.values()), {}
        for peer in peers:
            peer.ended(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw)

    def stop(self, timeout: float = 5.0) -> None:
        """Close stdin (the host exits, and every peer with it), then
        terminate, then kill."""
        proc = self.proc
        with self._lock:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except (OSError, ValueError):
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        for thread in self._threads:
            thread.join(1)


_host: _Host | None = None
_host_lock = threading.Lock()
_peers = itertools.count(1)


def host() -> _Host:
    """The running ``_Host``, started if there is none or it died."""
    global _host
    with _host_lock:
        if _host is None or not _host.alive():
            if _host is None:
                atexit.register(_stop_host)
            _host = _Host()
        return _host


def _stop_host() -> None:
    global _host
    with _host_lock:
        if _host is not None:
            _host.stop()
            _host = None


class _NodeProcess:
    """A peer in the Node host (``kind``: ``server`` or ``client``), with
    the lines it reported collected."""

    kind = ''

    def __init__(self, args: list[str], ready: Match | None,
                 timeout: float):
        self.lines: list[Line] = []
        self.ready_line: Line = {}
        self.exit_code: int | None = None
        self._replies: dict[Any, Line] = {}
        self._eof = False
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self.peer = next(_peers)
        self.host = host()
        self.host.add(self, self.kind, args)
        if ready is not None:
            try:
                self.ready_line = self.wait_for(ready, timeout)
            except BaseException:
                self.stop()
                raise

    def received(self, line: Line) -> None:
        """A line the peer reported (the host's reader thread)."""
        is_reply = (line.get('id') is not None and 'event' not in line
                    and ('result' in line or 'error' in line))
        with self._cond:
            if is_reply:
                self._replies[line['id']] = line
            else:
                self.lines.append(line)
            self._cond.notify_all()

    def ended(self, code: int | None) -> None:
        """The peer closed (``code``), or the host died (None)."""
        with self._cond:
            self._eof = True
            self.exit_code = code
            self._cond.notify_all()

    def _died(self) -> RuntimeError:
        how = ('the node host died' if self.exit_code is None
               else f'exited ({self.exit_code})')
        return RuntimeError(f'{self.kind}.js peer {self.peer} {how}:\n'
                            f'{self.host.tail()}')

    def command(self, name: str, reply_timeout: float | None = None,
                **args: Any) -> Any:
        """Send command ``name`` and return its result.

        Raises ``NodeCommandError`` on an error reply, ``TimeoutError`` if
        none comes within ``reply_timeout`` (default: 10 s plus the
        command's own ``timeout`` in ms, if any).
        """
        if reply_timeout is None:
            reply_timeout = 10 + float(args.get('timeout') or 0) / 1000
        ident = next(self._ids)
        if self._eof:
            raise self._died()
        self.host.send({'peer': self.peer, 'id': ident, 'cmd': name,
                        **to_wire(args)})
        with self._cond:
            self._cond.wait_for(lambda: ident in self._replies or self._eof,
                                reply_timeout)
            reply = self._replies.pop(ident, None)
        if reply is None:
            if self._eof:
                raise self._died()
            raise TimeoutError(f'{self.kind}.js: no reply to {name} in '
                               f'{reply_timeout} s')
        if 'error' in reply:
            raise NodeCommandError(name, reply)
        return reply['result']

    def events(self, match: Match) -> list[Line]:
        """Every reported line matching ``match`` so far, in order.

        ``match`` is a predicate on the line dict, or a name: the value of
        its ``event``, ``clientEvent`` or ``serverSideEmit``, or one of its
        keys (``connection``, ``disconnect``, ``ready``).
        """
        with self._cond:
            return [line for line in self.lines if _matches(match, line)]

    def wait_for(self, match: Match, timeout: float = 5.0,
                 start: int = 0) -> Line:
        """The first line from index ``start`` on matching ``match``.

        See ``events`` for ``match``; ``TimeoutError`` after ``timeout``.
        """
        found: list[Line] = []

        def check() -> bool:
            found.extend(line for line in self.lines[start:]
                         if _matches(match, line))
            return bool(found) or self._eof

        with self._cond:
            self._cond.wait_for(check, timeout)
        if found:
            return found[0]
        if self._eof:
            raise self._died()
        raise TimeoutError(f'{self.kind}.js: nothing matched {match!r} in '
                           f'{timeout} s')

    def stop(self, timeout: float = 5.0) -> None:
        """Close the peer (a server closes its sockets and drops its Redis
        connections). A peer that does not end within ``timeout`` takes
        the host down with it: the next peer starts a new one."""
        if not self._eof:
            try:
                self.host.send({'peer': self.peer, 'id': None,
                                'cmd': 'close'})
            except RuntimeError:
                return
            with self._cond:
                ended = self._cond.wait_for(lambda: self._eof, timeout)
            if not ended:
                self.host.stop()

    def __enter__(self) -> _NodeProcess:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


class NodeServer(_NodeProcess):
    """A Node.js Socket.IO server with the official streams adapter.

    ``redis_url`` is any URL of the suite's deployments: ``redis://``,
    ``rediss://`` (``?ssl_ca_certs=``), ``valkey://``, ``redis+cluster://``
    (node-redis ``createCluster``) or ``redis+sentinel://`` (node-redis
    ``createSentinel``); see ``makeClient`` in ``server.js``.
    ``adapter_options`` go to ``createAdapter`` (``stream_name`` or
    ``streamName``, ...); ``recovery_ms`` > 0 turns connection state
    recovery on with that ``maxDisconnectionDuration``. Ready (adapter
    reading and subscribed) when the constructor returns.
    """

    kind = 'server'

    def __init__(self, redis_url: str, *, port: int = 0,
                 recovery_ms: int = 0, start_timeout: float = 20.0,
                 **adapter_options: Any):
        options = {_camel(k): v for k, v in adapter_options.items()}
        super().__init__([str(port), redis_url, json.dumps(options),
                          str(recovery_ms)], 'ready', start_timeout)
        self.port = int(self.ready_line['port'])
        self.url = f'http://127.0.0.1:{self.port}'

    def client(self, namespace: str = '/', auth: Line | None = None,
               **options: Any) -> NodeClient:
        """A ``NodeClient`` connected to this server."""
        return NodeClient(self.url, namespace, auth, **options)


class NodeClient(_NodeProcess):
    """An official socket.io-client (websocket only unless told).

    ``options`` are socket.io-client options (``reconnection_delay`` or
    ``reconnectionDelay``, ...). Waits for ``connect`` unless
    ``wait_connect`` is false.
    """

    kind = 'client'

    def __init__(self, url: str, namespace: str = '/',
                 auth: Line | None = None, *, wait_connect: bool = True,
                 start_timeout: float = 10.0, **options: Any):
        opts = {_camel(k): v for k, v in options.items()}
        if auth is not None:
            opts['auth'] = auth
        super().__init__([url, namespace, json.dumps(to_wire(opts))],
                         'connect' if wait_connect else None, start_timeout)

    @property
    def sid(self) -> str | None:
        """The id given by the latest ``connect``."""
        connects = self.events('connect')
        return connects[-1]['id'] if connects else None
