// server.js - a Socket.IO server using the official Redis streams adapter,
// driven by JSON lines on stdin and reporting JSON lines on stdout.
//
//   node server.js [port] [redis_url] [adapter_options_json] [recovery_ms]
//
// (or the env vars PORT, REDIS_URL, ADAPTER_OPTIONS, RECOVERY_MS).
// port 0 picks a free port; recovery_ms > 0 turns connection state recovery
// on with that maxDisconnectionDuration. Prints {"ready": true, "port": N}
// once the adapter is reading its streams and subscribed to its channels.
//
// Commands: {"id": 1, "cmd": "emit", ...} -> {"id": 1, "result": ...} or
// {"id": 1, "error": "..."}. Binary is {"$bin_hex": "..."} both ways.
// Unsolicited lines: {"connection": sid, ...}, {"disconnect": sid, ...},
// {"clientEvent": ev, "sid": sid, "args": [...]},
// {"serverSideEmit": ev, "args": [...]}.
"use strict";
const fs = require("fs");
const http = require("http");
const readline = require("readline");
const { createClient } = require("redis");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { toPlain, fromPlain, out } = require("./util");

const [argPort, argUrl, argOpts, argRecovery] = process.argv.slice(2);
const PORT = Number(argPort ?? process.env.PORT ?? 0);
const REDIS_URL = argUrl ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const OPTIONS = JSON.parse(argOpts ?? process.env.ADAPTER_OPTIONS ?? "{}");
const RECOVERY_MS = Number(argRecovery ?? process.env.RECOVERY_MS ?? 0);
const NAMESPACES = ["/", "/chat"];
const RESERVED = ["connect", "connection", "new_namespace"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if ("useShardedPubsub" in OPTIONS) { // accept the spelling of our brief
  OPTIONS.useShardedPubSub = OPTIONS.useShardedPubsub;
  delete OPTIONS.useShardedPubsub;
}

// every connection of this process carries this name (duplicate() keeps
// it), so CLIENT LIST tells when our readers and subscriber are in place
const CLIENT_NAME = `sio-node-${process.pid}-${Date.now()}`;
const answers = {}; // "nsp event" -> value to ack client events with
let io, redis, httpServer;

function nsp(name = "/") {
  if (!NAMESPACES.includes(name)) throw new Error(`unknown namespace ${name}`);
  return io.of(name);
}

// nsp, then .to(), .except(), .volatile, .local, .timeout() as asked
function target(cmd) {
  let op = nsp(cmd.namespace);
  if (cmd.to != null) op = op.to(cmd.to);
  if (cmd.except != null && cmd.except.length) op = op.except(cmd.except);
  if (cmd.volatile) op = op.volatile;
  if (cmd.local) op = op.local;
  if (cmd.timeout != null) op = op.timeout(cmd.timeout);
  return op;
}

function args(cmd) {
  const list = fromPlain(cmd.args || []);
  for (const i of cmd.binary_args || []) list[i] = Buffer.from(list[i], "hex");
  return list;
}

const describe = (s) => ({ id: s.id, rooms: [...s.rooms], data: s.data });

const commands = {
  emit: (c) => void target(c).emit(c.event, ...args(c)),
  socketsJoin: (c) => target(c).socketsJoin(c.rooms),
  socketsLeave: (c) => target(c).socketsLeave(c.rooms),
  disconnectSockets: (c) => target(c).disconnectSockets(!!c.close),
  emitWithAck: (c) =>
    target({ timeout: 5000, ...c }).emitWithAck(c.event, ...args(c)),
  fetchSockets: async (c) => (await target(c).fetchSockets())
    .map((s) => ({ ...describe(s), handshake: s.handshake })),
  sockets: (c) => [...nsp(c.namespace).sockets.values()].map(describe),
  serverCount: (c) => nsp(c.namespace).adapter.serverCount(),
  // the ack timeout is fixed (5 s) by socket.io-adapter; c.timeout is unused
  serverSideEmit: (c) => {
    if (!c.ack) return void nsp(c.namespace).serverSideEmit(c.event, ...args(c));
    return nsp(c.namespace).serverSideEmitWithAck(c.event, ...args(c));
  },
  // a real io.on(event) handler; acks with `reply` unless it is absent
  onServerSideEmit: (c) => {
    const space = nsp(c.namespace);
    if (RESERVED.includes(c.event)) throw new Error("reserved event name");
    space.removeAllListeners(c.event);
    space.on(c.event, (...a) => {
      const ack = typeof a[a.length - 1] === "function" ? a.pop() : null;
      if (ack && "reply" in c) ack(fromPlain(c.reply));
    });
  },
  // how to ack a client event sent with a callback (default: no ack)
  answer: (c) => { answers[`${c.namespace || "/"} ${c.event}`] = c; },
  close: async () => { setImmediate(shutdown); },
};

function onConnection(socket) {
  const auth = socket.handshake.auth || {};
  if (!socket.recovered) {
    if (auth.rooms) socket.join(auth.rooms);
    if (auth.data !== undefined) socket.data = auth.data;
  }
  const ns = socket.nsp.name;
  out({ connection: socket.id, namespace: ns, recovered: socket.recovered,
    rooms: [...socket.rooms] });
  socket.onAny((event, ...a) => {
    const ack = typeof a[a.length - 1] === "function" ? a.pop() : null;
    out({ clientEvent: event, sid: socket.id, namespace: ns, args: toPlain(a),
      ack: !!ack });
    const answer = answers[`${ns} ${event}`];
    if (ack && answer) ack(fromPlain(answer.value));
  });
  socket.on("disconnect", (reason) =>
    out({ disconnect: socket.id, namespace: ns, reason }));
}

async function handle(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
    const fn = commands[cmd.cmd];
    if (!fn) throw new Error(`unknown command ${cmd.cmd}`);
    const result = await fn(cmd);
    out({ id: cmd.id, result: toPlain(result ?? null) });
  } catch (e) {
    const reply = { id: cmd?.id ?? null, error: String(e?.message ?? e) };
    if (e?.responses) reply.partial = toPlain(e.responses);
    out(reply);
  }
}

// wait until CLIENT LIST shows our XREAD readers and the subscriber
async function adapterReady() {
  const wanted = OPTIONS.streamCount || 1;
  for (let i = 0; i < 500; i++) {
    const mine = (await redis.clientList())
      .filter((c) => c.name === CLIENT_NAME);
    const readers = mine.filter((c) => c.cmd === "xread").length;
    const subscribed = mine.some((c) =>
      Number(c.sub || 0) + Number(c.ssub || 0) >= 2 * NAMESPACES.length);
    if (readers >= wanted && subscribed) return;
    await sleep(20);
  }
  throw new Error("adapter not ready after 10 s");
}

// node-redis options for our URLs: valkey:// is redis://, and a CA file
// given as ?ssl_ca_certs= (the Python form) becomes the TLS socket's CA
function clientOptions(url) {
  const parsed = new URL(url.replace(/^valkey(s?):/, "redis$1:"));
  const ca = parsed.searchParams.get("ssl_ca_certs");
  parsed.searchParams.delete("ssl_ca_certs");
  const opts = { url: parsed.toString(), name: CLIENT_NAME };
  if (ca) opts.socket = { tls: true, ca: fs.readFileSync(ca) };
  return opts;
}

async function main() {
  redis = createClient(clientOptions(REDIS_URL));
  redis.on("error", (e) => console.error("redis:", e.message));
  await redis.connect();
  httpServer = http.createServer();
  const opts = { adapter: createAdapter(redis, OPTIONS) };
  if (RECOVERY_MS > 0) {
    opts.connectionStateRecovery = { maxDisconnectionDuration: RECOVERY_MS };
  }
  io = new Server(httpServer, opts);
  for (const name of NAMESPACES) {
    const space = io.of(name);
    space.on("connection", onConnection);
    // report every server-side emit, handled or not
    const original = space._onServerSideEmit.bind(space);
    space._onServerSideEmit = (packet) => {
      const [event, ...a] = packet;
      const ack = typeof a[a.length - 1] === "function" ? a.pop() : null;
      out({ serverSideEmit: event, namespace: name, args: toPlain(a),
        ack: !!ack });
      original(packet);
    };
  }
  await new Promise((r) => httpServer.listen(PORT, "127.0.0.1", r));
  await adapterReady();
  readline.createInterface({ input: process.stdin })
    .on("line", handle)
    .on("close", shutdown);
  out({ ready: true, port: httpServer.address().port });
}

let closing = false;
async function shutdown() {
  if (closing) return;
  closing = true;
  try {
    io.close();
    await sleep(100);
    await redis.quit();
  } catch (e) {
    console.error("shutdown:", e.message);
  }
  process.exit(0);
}

process.on("uncaughtException", (e) => console.error("uncaught:", e));
process.on("unhandledRejection", (e) => console.error("unhandled:", e));
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
