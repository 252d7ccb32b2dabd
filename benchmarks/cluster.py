"""The cluster figures of issue 13: RedisStreamsManager against
socketio.RedisManager (and with ``--asyncio`` AsyncRedisStreamsManager
against socketio.AsyncRedisManager), in turn, in one run, on one private
Redis/Valkey.

    python -m benchmarks.cluster [--quick] [--runs N] [--curve]
                                 [--emits N] [--profile DIR]
                                 [--asyncio] [--no-sync] [--node]

Each server is a threading ``socketio.Server`` (or a
``socketio.AsyncServer`` on an event loop polling by select(2), whose
timeouts have microseconds, so that 2,000 emits/s are evenly spaced there
too) in its own process (so its
CPU can be read from /proc) with fake clients registered with its manager;
deliveries are captured at the Engine.IO boundary (``_send_eio_packet``),
no websocket. Server 0 emits ``{'seq': i, 'pad': 100 bytes}``. Figures
(medians of ``--runs``): burst delivery rate per remote client with 3
servers x 1 and x 10 clients, time inside ``emit()``, CPU of the whole
cluster (servers + redis-server) and latency at a steady rate, and raw
redis-py (pipelined XADD, then XREAD; redis.asyncio for the asyncio pair)
as the transport's limit (``benchmarks.transport``: what each transport
alone costs redis-server at a steady rate).
``--curve`` adds per-server CPU per entry for 2, 4 and 8 servers where only
server 1 has the target room; ``--emits N`` the emitting server's RSS over
N emits and the warnings (gaps) the servers logged; ``--profile DIR``
writes cProfile stats of every thread of the emitter and of one receiver
at the steady rate. ``--node`` adds the official Node.js stack (Socket.IO
4.8 with ``@socket.io/redis-streams-adapter`` 0.3.1, ``tests/js/bench.js``,
installed by ``npm ci`` in ``tests/js``) as a reference column of the sync
table, measured the same way (fake sockets, deliveries counted where
socket.io hands them to Engine.IO); its timers have a 1 ms grain, so at
2,000/s it emits two at a time, each timed from its own emit.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import multiprocessing
import os
import pstats
import re
import statistics
import subprocess
import tempfile
import threading
import time
from functools import partial
from typing import Any

import redis
import redis.asyncio

from socketio_streams.steps import Steps, arun, run
from tests.servers import RedisProcess

from .harness import ASYNC_MANAGERS, MANAGERS, make_manager

#: (ours, theirs) compared in a table
PAIRS = {'sync': ('RedisStreamsManager', 'socketio.RedisManager'),
         'asyncio': ('AsyncRedisStreamsManager',
                     'socketio.AsyncRedisManager')}
#: the official Node.js stack, a reference (``--node``)
NODE = 'node:@socket.io/redis-streams-adapter'
TICK = os.sysconf('SC_CLK_TCK')
PAD = 'x' * 100
BEHIND = re.compile(r'fell behind by (\d+) entries')


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int | str = 'self') -> float:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the server process -----------------------------------------------------

class Sink:
    """What reached the Engine.IO boundary of one server."""

    def __init__(self) -> None:
        self.reset(0, False)

    def reset(self, target: int, record: bool) -> None:
        self.count, self.target = 0, target
        self.done_at: float | None = None
        self.done = threading.Event()
        self.times: list | None = [] if record else None

    def send(self, eio_sid: str, pkt: Any) -> None:
        self.count += 1  # one delivering thread per server
        if self.times is not None:
            self.times.append((time.monotonic(), pkt.data))
        if self.count == self.target:
            self.done_at = time.monotonic()
            self.done.set()


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage()[:200])


def _profile_threads() -> list:
    """A cProfile per thread, the main one and every one started later
    (wall clock; ``print_top`` leaves out where threads wait)."""
    profiles = []

    def start(*_args):
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.enable()

    threading.setprofile(start)
    start()
    return profiles


class Threads:
    """The sync world: a threading ``socketio.Server``, the worker's steps
    driven with blocking calls."""

    sleep: Any = staticmethod(time.sleep)

    def server(self, **options: Any) -> Any:
        import socketio
        return socketio.Server(async_mode='threading', **options)

    def sender(self, send: Any) -> Any:
        return send

    def drive(self, steps: Steps) -> Any:
        return run(steps)

    def stop(self) -> None:
        pass


class EventLoop(Threads):
    """The asyncio world: a ``socketio.AsyncServer`` on an event loop in a
    thread, the worker's steps driven there."""

    sleep = staticmethod(asyncio.sleep)

    def __init__(self) -> None:
        import selectors

        from tests.async_nodes import Loop
        # select(2), not epoll: its timeout has microseconds, epoll's
        # milliseconds, which turn 2,000 emits/s into clumps of 2 or 3
        # every 1.3 ms (a manager whose emit waits for Redis then spaces
        # them out, one whose emit does not sends them together)
        self.loop = Loop(selector=selectors.SelectSelector())

    def server(self, **options: Any) -> Any:
        import socketio
        return socketio.AsyncServer(async_mode='asgi', **options)

    def sender(self, send: Any) -> Any:
        async def send_async(eio_sid: str, pkt: Any) -> None:
            send(eio_sid, pkt)
        return send_async

    def drive(self, steps: Steps) -> Any:
        return self.loop.run(arun(steps), 3600)

    def stop(self) -> None:
        self.loop.stop()


def setup(world: Threads, kind: str, url: str, sink: Sink) -> Steps:
    """The server, its deliveries going to ``sink``."""
    sio = world.server(client_manager=make_manager(kind, url))
    sio._send_eio_packet = world.sender(sink.send)
    sio.manager_initialized = True
    yield partial(sio.manager.initialize)
    return sio


def connect(sio: Any, clients: int, count: int, room: str | None) -> Steps:
    """``count`` more fake clients, in ``room``: how many there are."""
    for n in range(clients + 1, clients + count + 1):
        sid = yield partial(sio.manager.connect, f'eio{n}', '/')
        if room:
            yield partial(sio.manager.enter_room, sid, '/', room)
    return clients + count


def close(sio: Any) -> Steps:
    if hasattr(sio.manager, 'close'):
        yield partial(sio.manager.close)


def worker(conn, kind: str, url: str, profile: str | None) -> None:
    warnings = Warnings()
    logging.getLogger().handlers = [warnings]  # counted, not printed
    for name in ('socketio_streams', 'socketio'):
        logging.getLogger(name).setLevel(logging.WARNING)
    profiles = _profile_threads() if profile else []
    world = EventLoop() if kind in ASYNC_MANAGERS else Threads()
    sink = Sink()
    sio = world.drive(setup(world, kind, url, sink))
    clients = 0
    while True:
        cmd, *args = conn.recv()
        if cmd == 'clients':  # (count, room or None)
            clients = world.drive(connect(sio, clients, *args))
            conn.send(clients)
        elif cmd == 'expect':  # (target, record arrival times)
            sink.reset(*args)
            conn.send(None)
        elif cmd == 'wait':
            sink.done.wait(args[0])
            conn.send((sink.done_at, sink.count))
        elif cmd == 'arrivals':
            conn.send([(t, int(data.split('"seq":')[1].split(',')[0]))
                       for t, data in sink.times or ()])
        elif cmd == 'burst':  # (count, room, rss every)
            conn.send(world.drive(burst(sio, *args)))
        elif cmd == 'steady':  # (rate, seconds, room)
            conn.send(world.drive(steady(world.sleep, sio, *args)))
        elif cmd == 'rss':
            conn.send(rss_mb())
        elif cmd == 'warnings':
            conn.send(list(warnings.records))
        elif cmd == 'stop':
            if profiles:
                threading.setprofile(None)
                for prof in profiles:
                    prof.disable()
                stats = pstats.Stats(*profiles)
                stats.dump_stats(str(profile))
            world.drive(close(sio))
            world.stop()
            conn.send(None)
            return


def burst(sio, count: int, room: str | None, every: int = 0) -> Steps:
    """Emit ``count`` packets at once: (start, seconds in emit(), RSS)."""
    rss = [(0, rss_mb())]
    start = time.monotonic()
    inside = 0.0
    for i in range(count):
        t = time.perf_counter()
        yield partial(sio.emit, 'n', {'seq': i, 'pad': PAD}, to=room)
        inside += time.perf_counter() - t
        if every and (i + 1) % every == 0:
            rss.append((i + 1, rss_mb()))
    return start, inside, rss


def steady(sleep, sio, rate: int, seconds: float,
           room: str | None) -> Steps:
    """Emit at ``rate``/s: (send times by seq, seconds in emit())."""
    sent, inside = [], 0.0
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            yield partial(sleep, delay)
        t = time.monotonic()
        yield partial(sio.emit, 'n', {'seq': i, 'pad': PAD}, to=room)
        inside += time.monotonic() - t
        sent.append(t)
    return sent, inside


# --- the parent -------------------------------------------------------------

class Cluster:
    """``size`` server processes with one manager kind."""

    def __init__(self, kind: str, url: str, size: int,
                 profile: str | None = None):
        ctx = multiprocessing.get_context('spawn')
        self.conns, self.procs = [], []
        for i in range(size):
            parent, child = ctx.Pipe()
            path = f'{profile}/{kind}-{i}.prof' if profile and i < 2 \
                else None
            proc = ctx.Process(target=worker, args=(child, kind, url, path),
                               daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def call(self, i: int, *cmd) -> Any:
        self.conns[i].send(cmd)
        return self.conns[i].recv()

    def all(self, *cmd, only=None) -> list:
        idx = range(len(self.conns)) if only is None else only
        for i in idx:
            self.conns[i].send(cmd)
        return [self.conns[i].recv() for i in idx]

    def cpu(self) -> list[float]:
        return [cpu_seconds(p.pid or 0) for p in self.procs]

    def stop(self) -> None:
        try:
            self.all('stop')
        finally:
            for p in self.procs:
                p.join(10)
                if p.is_alive():
                    p.kill()


class NodeConn:
    """A ``tests/js/bench.js`` process as a worker's end of a pipe: one
    JSON line each way per command."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc

    def send(self, cmd: tuple) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + '\n')
        self.proc.stdin.flush()

    def recv(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('bench.js ended')
        return json.loads(line)


class NodeCluster(Cluster):
    """``size`` Node.js processes, each a Socket.IO server with the
    official Redis streams adapter (``tests/js/bench.js``), driven by the
    same commands as the Python workers."""

    def __init__(self, kind: str, url: str, size: int,
                 profile: str | None = None):
        from tests.nodejs import JS_DIR, npm_ready
        npm_ready()
        self.procs = [subprocess.Popen(
            ['node', str(JS_DIR / 'bench.js'), url], text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(size)]
        self.conns = [NodeConn(proc) for proc in self.procs]
        try:
            if [conn.recv() for conn in self.conns] != ['ready'] * size:
                raise RuntimeError('bench.js did not start')
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for conn in self.conns:
            try:
                if conn.proc.poll() is None:
                    conn.send(('stop',))
                    conn.recv()
                conn.proc.wait(10)
            except Exception:
                conn.proc.kill()
                conn.proc.wait(10)


def make_cluster(kind: str, url: str, size: int,
                 profile: str | None = None) -> Cluster:
    cls = NodeCluster if kind == NODE else Cluster
    return cls(kind, url, size, profile)


def redis_pid(server: RedisProcess) -> int:
    assert server.proc is not None
    return server.proc.pid


def remote(cluster: Cluster) -> range:
    return range(1, len(cluster.procs))


def measure_burst(cluster: Cluster, count: int, per_server: int) -> dict:
    cluster.all('expect', count * per_server, False)
    start, inside, _ = cluster.call(0, 'burst', count, None)
    done = cluster.all('wait', 120, only=remote(cluster))
    if any(t is None for t, _ in done):
        raise RuntimeError(f'burst incomplete: {done}')
    last = max(t for t, _ in done)
    return {'burst': count / (last - start), 'emit_us': inside / count * 1e6}


def measure_steady(cluster: Cluster, redis_pid: int, rate: int,
                   seconds: float) -> dict:
    count = int(rate * seconds)
    cluster.all('expect', count, True)
    before = cluster.cpu(), cpu_seconds(redis_pid)
    sent, inside = cluster.call(0, 'steady', rate, seconds, None)
    done = cluster.all('wait', 60, only=remote(cluster))
    after = cluster.cpu(), cpu_seconds(redis_pid)
    if any(t is None for t, _ in done):
        raise RuntimeError(f'steady incomplete: {done}')
    lat = sorted((t - sent[seq]) * 1000 for arrivals in
                 cluster.all('arrivals', only=remote(cluster))
                 for t, seq in arrivals)
    servers = sum(after[0]) - sum(before[0])
    return {'cpu': servers + after[1] - before[1], 'cpu_servers': servers,
            'cpu_redis': after[1] - before[1],
            'p50': lat[len(lat) // 2], 'p99': lat[int(len(lat) * 0.99)],
            'steady_emit_us': inside / count * 1e6,
            'rate': (count - 1) / (sent[-1] - sent[0])}


def run_cluster(kind: str, server: RedisProcess, args) -> dict:
    server.client().flushall()
    cluster = make_cluster(kind, server.url, 3)
    try:
        cluster.all('clients', 1, None)
        time.sleep(0.5)  # RedisManager's listeners subscribe
        before = sum(cluster.cpu()) + cpu_seconds(redis_pid(server))
        time.sleep(args.idle)
        idle = sum(cluster.cpu()) + cpu_seconds(redis_pid(server)) - before
        result = measure_burst(cluster, args.burst, 1)
        result['idle'] = idle / args.idle * args.seconds
        time.sleep(0.5)
        result.update(measure_steady(cluster, redis_pid(server), args.rate,
                                     args.seconds))
        cluster.all('clients', 9, None)
        result['burst10'] = measure_burst(cluster, args.burst, 10)['burst']
    finally:
        cluster.stop()
    return result


def profile_steady(kind: str, server: RedisProcess, args) -> None:
    """Steady rate with cProfile in servers 0 (publishes) and 1 (receives);
    prints the top functions by own time, writes DIR/<kind>-<i>.prof."""
    server.client().flushall()
    os.makedirs(args.profile, exist_ok=True)
    cluster = Cluster(kind, server.url, 3, args.profile)
    try:
        cluster.all('clients', 1, None)
        time.sleep(0.5)
        measure_steady(cluster, redis_pid(server), args.rate, args.seconds)
    finally:
        cluster.stop()
    for i, role in ((0, 'publishing (server 0)'), (1, 'receiving (server 1)')):
        print(f'\n{kind}, {role}, {args.rate}/s for {args.seconds:g} s:')
        print_top(pstats.Stats(f'{args.profile}/{kind}-{i}.prof'),
                  args.top, int(args.rate * args.seconds))


#: where threads wait (blocked in the kernel or on a lock), not CPU spent
WAITS = ('recv', 'acquire', 'read', 'sleep', 'wait', 'select', 'poll')


def print_top(stats: pstats.Stats, top: int, entries: int) -> None:
    """Own time per function, waits left out, as a share of the total
    (cProfile's overhead makes absolute times meaningless; the CPU per
    entry is ``--curve``'s), and calls per entry."""
    rows = [(tt, ct, nc, func) for func, (_cc, nc, tt, ct, _) in
            stats.stats.items()  # type: ignore[attr-defined]
            if not (func[0] == '~' and any(w in func[2] for w in WAITS))]
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print('own %, cumulative %, calls per entry:')
    for tt, ct, nc, (path, line, name) in rows[:top]:
        where = f'{path.split("site-packages/")[-1]}:{line}({name})' \
            if path != '~' else name
        print(f'{tt / total:6.1%} {ct / total:7.1%} {nc / entries:6.1f}  '
              f'{where[-90:]}')


def raw_redis(url: str, count: int, world: str = 'sync') -> float:
    """Pipelined XADD of ``count`` entries, then XREAD them all: msg/s,
    with redis-py's sync client or (``world='asyncio'``) redis.asyncio."""
    if world == 'sync':
        return run(raw_steps(redis.Redis.from_url(url), count))
    return asyncio.run(arun(raw_steps(redis.asyncio.Redis.from_url(url),
                                      count)))


def raw_steps(client: Any, count: int) -> Steps[float]:
    yield partial(client.delete, 'raw')
    data = '{"seq": %d, "pad": "%s"}'
    start = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd('raw', {'data': data % (i, PAD)}, maxlen=count,
                  approximate=True)
        if len(pipe) >= 500:
            yield pipe.execute
    yield pipe.execute
    got, last = 0, '0'
    while got < count:
        reply: Any = yield partial(client.xread, {'raw': last}, count=1000)
        for _key, entries in reply or ():
            got += len(entries)
            last = entries[-1][0]
    rate = count / (time.perf_counter() - start)
    yield partial(client.delete, 'raw')
    yield getattr(client, 'aclose', client.close)
    return rate


def curve(kind: str, server: RedisProcess, size: int, args) -> list:
    """CPU ms per entry of each server; only server 1 has the room."""
    server.client().flushall()
    cluster = make_cluster(kind, server.url, size)
    try:
        cluster.all('clients', 1, None)
        cluster.call(1, 'clients', 1, 'target')
        time.sleep(0.5)
        count = int(args.rate * args.seconds)
        cluster.all('expect', 0, False)
        cluster.call(1, 'expect', count, False)
        before = cluster.cpu()
        cluster.call(0, 'steady', args.rate, args.seconds, 'target')
        cluster.call(1, 'wait', 60)
        time.sleep(0.5)  # the others finish reading
        after = cluster.cpu()
    finally:
        cluster.stop()
    return [(b - a) / count * 1e6 for a, b in zip(before, after)]


def settled(cluster: Cluster, quiet: float = 10.0) -> list:
    """Wait until every server has its packets, or until none got any for
    ``quiet`` seconds (entries trimmed unread never arrive)."""
    counts = None
    while True:
        done = cluster.all('wait', quiet)
        if all(t is not None for t, _ in done) or done == counts:
            return done
        counts = done


def memory(kind: str, server: RedisProcess, emits: int) -> None:
    server.client().flushall()
    cluster = make_cluster(kind, server.url, 3)
    try:
        cluster.all('clients', 1, None)
        time.sleep(0.5)
        cluster.all('expect', emits, False)
        _, inside, rss = cluster.call(0, 'burst', emits, None,
                                      max(emits // 10, 1))
        done = settled(cluster)
        warnings, others = cluster.all('warnings'), cluster.all('rss')[1:]
    finally:
        cluster.stop()
    print(f'{kind}: {emits} emits, {inside / emits * 1e6:.1f} us in emit(); '
          'RSS of the emitter (MB): '
          + ', '.join(f'{n}: {mb:.0f}' for n, mb in rss))
    print(f'  delivered per server: {[c for _, c in done]}; RSS of the '
          f'others (MB): {[round(m) for m in others]}')
    for i, records in enumerate(warnings):
        trimmed = sum(int(m.group(1)) for m in map(BEHIND.search, records)
                      if m)
        print(f'  server {i}: {len(records)} warnings, {trimmed} entries '
              'trimmed unread'
              + ''.join(f'\n    {r}' for r in records[:3]))


ROWS = [('burst', 'burst 3x1: delivered msg/s per remote client', '{:,.0f}'),
        ('burst10', 'burst 3x10: msg/s per remote client', '{:,.0f}'),
        ('emit_us', 'time inside emit() (burst), us', '{:.1f}'),
        ('steady_emit_us', 'time inside emit() (steady), us', '{:.1f}'),
        ('rate', 'steady: rate reached, msg/s', '{:,.0f}'),
        ('cpu', 'steady: CPU s, whole cluster', '{:.2f}'),
        ('cpu_servers', 'steady: CPU s, 3 servers only', '{:.2f}'),
        ('cpu_redis', 'steady: CPU s, redis-server only', '{:.2f}'),
        ('idle', 'idle: CPU s of the cluster, same duration', '{:.2f}'),
        ('p50', 'steady latency p50, ms', '{:.2f}'),
        ('p99', 'steady latency p99, ms', '{:.2f}')]


def table(world: str, results: dict, raw: float, args) -> None:
    def median(kind, key):
        return statistics.median(r[key] for r in results[kind])

    ours, theirs = PAIRS[world]
    node = world == 'sync' and NODE in results
    print(f'\n{world}: {args.runs} run(s), medians; burst {args.burst} '
          f'packets; steady {args.rate}/s for {args.seconds:g} s')
    extra = f' {"Node adapter 0.3.1":>18} |' if node else ''
    print(f'| {"figure":44} | {ours:>24} | {theirs:>26} | ratio |{extra}')
    extra = f' {"-" * 18} |' if node else ''
    print(f'| {"-" * 44} | {"-" * 24} | {"-" * 26} | ----- |{extra}')
    for key, label, fmt in ROWS:
        a, b = median(ours, key), median(theirs, key)
        ratio = f'{a / b:4.2f}x' if b else '-'
        extra = f' {fmt.format(median(NODE, key)):>18} |' if node else ''
        print(f'| {label:44} | {fmt.format(a):>24} | {fmt.format(b):>26} '
              f'| {ratio:>5} |{extra}')
    burst = median(ours, 'burst')
    client = 'redis-py' if world == 'sync' else 'redis.asyncio'
    print(f'| {"raw " + client + ": pipelined XADD, then XREAD":44} | '
          f'{raw:>22,.0f}/s | {"":26} | burst = {burst / raw:.0%} |')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='smaller burst, 3 s steady, 1 run')
    parser.add_argument('--runs', type=int, help='median of N (default 3)')
    parser.add_argument('--burst', type=int, help='packets per burst')
    parser.add_argument('--rate', type=int, default=2000)
    parser.add_argument('--seconds', type=float)
    parser.add_argument('--idle', type=float, default=3.0,
                        help='seconds of idle cluster measured')
    parser.add_argument('--curve', action='store_true',
                        help='CPU per entry for 2, 4 and 8 servers')
    parser.add_argument('--emits', type=int, default=0,
                        help='RSS of the emitter over N emits')
    parser.add_argument('--asyncio', action='store_true',
                        help='also AsyncRedisStreamsManager against '
                        'socketio.AsyncRedisManager')
    parser.add_argument('--no-sync', action='store_true',
                        help='leave the sync managers out')
    parser.add_argument('--node', action='store_true',
                        help='also the official Node.js adapter, as a '
                        'reference column of the sync table (needs node '
                        'and npm)')
    parser.add_argument('--managers', nargs='+',
                        choices=MANAGERS + ASYNC_MANAGERS + (NODE,),
                        help='for --profile, --emits and --curve '
                        '(default: those of the table)')
    parser.add_argument('--no-table', action='store_true')
    parser.add_argument('--profile', metavar='DIR',
                        help='profile servers 0 and 1 at the steady rate')
    parser.add_argument('--top', type=int, default=25,
                        help='functions printed per profile')
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.burst = args.burst or (3000 if args.quick else 10_000)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    worlds = [w for w, on in (('sync', not args.no_sync),
                              ('asyncio', args.asyncio)) if on]
    args.managers = args.managers or [
        kind for world in worlds for kind in reversed(PAIRS[world])]
    logging.basicConfig(level=logging.CRITICAL)
    import redis.utils
    print(f'hiredis: {redis.utils.HIREDIS_AVAILABLE}; os.cpu_count() '
          f'{os.cpu_count()}; load {os.getloadavg()[0]:.2f}')
    server = RedisProcess(tempfile.mkdtemp()).start()
    try:
        if not args.no_table:
            kinds = [kind for world in worlds for kind in PAIRS[world]]
            if args.node and 'sync' in worlds:
                kinds.append(NODE)
            results: dict = {kind: [] for kind in kinds}
            for i in range(args.runs):
                for kind in kinds:
                    results[kind].append(run_cluster(kind, server, args))
                    print(f'run {i + 1} {kind}: ' + ', '.join(
                        f'{k} {v:.3g}' for k, v in results[kind][-1].items())
                        + f'; load {os.getloadavg()[0]:.2f}', flush=True)
            raws = {world: statistics.median(
                raw_redis(server.url, 100_000, world)
                for _ in range(args.runs)) for world in worlds}
            print(f'{server.kind}-server, load {os.getloadavg()[0]:.2f}')
            for world in worlds:
                table(world, results, raws[world], args)
        if args.profile:
            for kind in args.managers:
                if kind != NODE:
                    profile_steady(kind, server, args)
        if args.curve:
            print(f'\nCPU us per entry, steady {args.rate}/s for '
                  f'{args.seconds:g} s to a room only server 1 has '
                  '(server 0 emits; the rest: mean of the others)')
            for kind in args.managers:
                for size in (2, 4, 8):
                    per = curve(kind, server, size, args)
                    rest = statistics.mean(per[2:]) if size > 2 else 0
                    print(f'{kind:26} {size} servers: emitter {per[0]:6.1f}'
                          f'  room holder {per[1]:6.1f}  others '
                          f'{rest:6.1f}', flush=True)
        if args.emits:
            for kind in args.managers:
                memory(kind, server, args.emits)
    finally:
        server.stop()


if __name__ == '__main__':
    main()
