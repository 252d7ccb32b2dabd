// bench.js - one Socket.IO server with the official Redis streams adapter,
// as a worker of python -m benchmarks.cluster --node: the Node stack as a
// reference beside the Python managers, measured the same way.
//
//   node bench.js redis://host:port
//
// Reads one JSON array a line on stdin, [command, ...args], and answers
// each with one JSON line: the commands of benchmarks/cluster.py's
// worker(), with its replies. Its clients are fake sockets registered with
// the namespace and its adapter; what the adapter delivers to them is
// counted where socket.io hands it to Engine.IO (writeToEngine), as the
// Python workers count at _send_eio_packet. Times are CLOCK_MONOTONIC
// seconds (process.hrtime, as Python's time.monotonic()).
"use strict";
const readline = require("readline");
const { createClient } = require("redis");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");

const PAD = "x".repeat(100);
const now = () => Number(process.hrtime.bigint()) / 1e9;
const SEQ = /"seq":(\d+)/;

let io, redis, nsp;
let clients = 0;
const sink = { count: 0, target: 0, doneAt: null, times: null, waiters: [] };

function deliver(encodedPackets) {
  sink.count++;
  if (sink.times) {
    const m = SEQ.exec(String(encodedPackets[0]));
    sink.times.push([now(), m ? Number(m[1]) : -1]);
  }
  if (sink.count === sink.target) {
    sink.doneAt = now();
    for (const w of sink.waiters.splice(0)) w();
  }
}

function addClients(count, room) {
  for (let n = clients + 1; n <= clients + count; n++) {
    const id = `fake${n}`;
    nsp.sockets.set(id, { id, client: { writeToEngine: deliver } });
    nsp.adapter.addAll(id, new Set(room ? [id, room] : [id]));
  }
  clients += count;
  return clients;
}

function emit(i, room) {
  (room ? nsp.to(room) : nsp).emit("n", { seq: i, pad: PAD });
}

function burst(count, room, every) {
  const rss = [[0, process.memoryUsage().rss / 2 ** 20]];
  const start = now();
  let inside = 0;
  for (let i = 0; i < count; i++) {
    const t = now();
    emit(i, room);
    inside += now() - t;
    if (every && (i + 1) % every === 0) {
      rss.push([i + 1, process.memoryUsage().rss / 2 ** 20]);
    }
  }
  return [start, inside, rss];
}

// timers have a 1 ms grain: the emits due meanwhile go together
function steady(rate, seconds, room) {
  const count = Math.floor(rate * seconds);
  const sent = [];
  let inside = 0;
  const start = now();
  return new Promise((resolve) => {
    function tick() {
      while (sent.length < count && start + sent.length / rate <= now()) {
        const t = now();
        emit(sent.length, room);
        inside += now() - t;
        sent.push(t);
      }
      if (sent.length >= count) return resolve([sent, inside]);
      const due = start + sent.length / rate - now();
      setTimeout(tick, Math.max(due * 1000, 0));
    }
    tick();
  });
}

function wait(timeout) {
  if (sink.doneAt !== null || sink.count >= sink.target) {
    return [sink.doneAt, sink.count];
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve([null, sink.count]),
      timeout * 1000);
    sink.waiters.push(() => {
      clearTimeout(timer);
      resolve([sink.doneAt, sink.count]);
    });
  });
}

const commands = {
  clients: (count, room) => addClients(count, room),
  expect: (target, record) => {
    Object.assign(sink, { count: 0, target, doneAt: null,
      times: record ? [] : null });
    return null;
  },
  wait,
  arrivals: () => sink.times || [],
  burst: (count, room, every = 0) => burst(count, room, every),
  steady,
  rss: () => process.memoryUsage().rss / 2 ** 20,
  warnings: () => [],
  stop: async () => {
    // no engine (no HTTP server): close the namespaces' adapters
    for (const space of io._nsps.values()) space.adapter.close();
    await redis.quit().catch(() => {});
    return null;
  },
};

async function main() {
  redis = createClient({ url: process.argv[2] });
  redis.on("error", (e) => console.error("redis:", e.message));
  await redis.connect();
  io = new Server({ adapter: createAdapter(redis) });
  nsp = io.of("/");
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  out("ready");
  let queue = Promise.resolve(); // one command at a time, in order
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const [cmd, ...args] = JSON.parse(line);
    queue = queue.then(async () => {
      out(await commands[cmd](...args));
      if (cmd === "stop") process.exit(0);
    });
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
