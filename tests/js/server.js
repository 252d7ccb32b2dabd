// server.js - a Socket.IO server using the official Redis streams adapter,
// driven by JSON commands and reporting JSON lines. host.js runs many of
// them in one Node process, as the suite does (loading socket.io, the
// adapter and node-redis costs ~0.45 s of CPU a process); `node server.js`
// runs one on stdin/stdout.
//
//   node server.js [port] [redis_url] [adapter_options_json] [recovery_ms]
//
// (or the env vars PORT, REDIS_URL, ADAPTER_OPTIONS, RECOVERY_MS).
// redis_url is one of the Python package's URLs: redis://, rediss://
// (?ssl_ca_certs=), valkey://, redis+cluster://h:p,h:p (node-redis
// createCluster) or redis+sentinel://h:p,h:p/<db>/<service> (node-redis
// createSentinel, see sentinelClient).
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
const { createClient, createCluster, createSentinel } = require("redis");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { toPlain, fromPlain, serve } = require("./util");

const NAMESPACES = ["/", "/chat"];
const RESERVED = ["connect", "connection", "new_namespace"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let started = 0; // servers started in this process

// One server. `argv` as on the command line; `out(obj)` writes one of its
// lines; `exit(code)` is called once, when it has closed. Returns the
// function that runs one of its commands.
function start(argv, out, exit) {
  const [argPort, argUrl, argOpts, argRecovery] = argv;
  const PORT = Number(argPort ?? process.env.PORT ?? 0);
  const REDIS_URL = argUrl ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const options = JSON.parse(argOpts ?? process.env.ADAPTER_OPTIONS ?? "{}");
  const RECOVERY_MS = Number(argRecovery ?? process.env.RECOVERY_MS ?? 0);
  if ("useShardedPubsub" in options) { // accept the spelling of our brief
    options.useShardedPubSub = options.useShardedPubsub;
    delete options.useShardedPubsub;
  }
  // every connection of this server carries this name (duplicate() keeps
  // it), so CLIENT LIST tells when our readers and subscriber are in place
  const CLIENT_NAME = `sio-node-${process.pid}-${Date.now()}-${++started}`;
  const answers = {}; // "nsp event" -> value to ack client events with
  const clients = []; // every node-redis client made, dropped at shutdown
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

  async function handle(cmd) {
    try {
      const fn = commands[cmd.cmd];
      if (!fn) throw new Error(`unknown command ${cmd.cmd}`);
      const result = await fn(cmd);
      out({ id: cmd.id, result: toPlain(result ?? null) });
    } catch (e) {
      const reply = { id: cmd.id ?? null, error: String(e?.message ?? e) };
      if (e?.responses) reply.partial = toPlain(e.responses);
      out(reply);
    }
  }

  // CLIENT LIST of every server our connections may be on: each master of
  // a cluster (readers block on the master of their stream's slot, the
  // subscriber is on one master: replicas are not used), else the one
  // server (a sentinel client's commands go to the master)
  async function clientLists() {
    if (!Array.isArray(redis.masters)) return redis.clientList();
    const lists = await Promise.all(redis.masters.map(
      async (master) => (await redis.nodeClient(master)).clientList()));
    return lists.flat();
  }

  // wait until CLIENT LIST shows our XREAD readers and the subscriber
  async function adapterReady() {
    const wanted = options.streamCount || 1;
    for (let i = 0; i < 500; i++) {
      const mine = (await clientLists()).filter((c) => c.name === CLIENT_NAME);
      const readers = mine.filter((c) => c.cmd === "xread").length;
      // sharded channels may be spread over several connections
      const subscriptions = mine.reduce(
        (n, c) => n + Number(c.sub || 0) + Number(c.ssub || 0), 0);
      if (readers >= wanted && subscriptions >= 2 * NAMESPACES.length) return;
      await sleep(20);
    }
    throw new Error("adapter not ready after 10 s");
  }

  async function main() {
    redis = makeClient(REDIS_URL, CLIENT_NAME, clients);
    redis.on("error", (e) => console.error("redis:", e.message));
    await redis.connect();
    httpServer = http.createServer();
    const opts = { adapter: createAdapter(redis, options) };
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
    out({ ready: true, port: httpServer.address().port });
  }

  // as when its process ended: the sockets closed, then every Redis
  // connection dropped at once (readers blocked in XREAD included)
  let closing = false;
  async function shutdown(code = 0) {
    if (closing) return;
    closing = true;
    try {
      if (io) io.close();
      await sleep(100);
    } catch (e) {
      console.error("shutdown:", e.message);
    }
    for (const client of clients) {
      try {
        await client.destroy();
      } catch (e) { /* never connected, or closed already */ }
    }
    exit(code);
  }

  main().catch((e) => {
    console.error(e);
    shutdown(1);
  });
  return handle;
}

// TLS socket options from ?ssl=true or ?ssl_ca_certs= (the Python forms)
function tlsSocket(params) {
  const ca = params.get("ssl_ca_certs");
  const ssl = /^(1|true|yes|on|y|t)$/i.test(params.get("ssl") || "");
  if (ca) return { tls: true, ca: fs.readFileSync(ca) };
  return ssl ? { tls: true } : {};
}

// redis+cluster:// and redis+sentinel:// carry several hosts, which URL
// cannot parse: [user:password@]h:p,h:p[/path][?query]
function multiHostUrl(url) {
  const rest = url.slice(url.indexOf("://") + 3);
  const query = rest.includes("?") ? rest.slice(rest.indexOf("?") + 1) : "";
  let hostPart = rest.slice(0, rest.length - (query ? query.length + 1 : 0));
  const slash = hostPart.indexOf("/");
  const path = slash < 0 ? "" : hostPart.slice(slash);
  if (slash >= 0) hostPart = hostPart.slice(0, slash);
  const at = hostPart.lastIndexOf("@");
  const auth = {};
  if (at >= 0) {
    const [user, password] = hostPart.slice(0, at).split(":", 2);
    if (user) auth.username = decodeURIComponent(user);
    if (password) auth.password = decodeURIComponent(password);
    hostPart = hostPart.slice(at + 1);
  }
  const hosts = hostPart.split(",").map((h) => {
    const i = h.lastIndexOf(":");
    return { host: h.slice(0, i).replace(/^\[|\]$/g, ""),
      port: Number(h.slice(i + 1)) };
  });
  const params = new URLSearchParams(query);
  return { hosts, auth, path: path.split("/").filter(Boolean),
    socket: tlsSocket(params) };
}

// node-redis' RedisSentinel lacks what the adapter calls on a node-redis
// client (dist/util.js): duplicate() (duplicateClient, for the readers and
// the subscriber), sendCommand(args) (PUBSUB, for serverCount(): the
// sentinel's takes (isReadonly, args)) and disconnect() (startPolling, on
// close). This adds them; all else is the RedisSentinel itself, which
// follows the master across failovers.
function sentinelClient(options, made) {
  const sentinel = createSentinel(options);
  const added = {
    duplicate: () => sentinelClient(options, made),
    sendCommand: (args, opts) => sentinel.sendCommand(false, args, opts),
    disconnect: () => sentinel.destroy(),
  };
  const proxy = new Proxy(sentinel, {
    get(target, key) {
      if (Object.hasOwn(added, key)) return added[key];
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  made.push(proxy);
  return proxy;
}

// `client`, and every client duplicated from it, pushed onto `made`
function tracked(client, made) {
  made.push(client);
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (...a) => tracked(duplicate(...a), made);
  return client;
}

// a node-redis client for one of our URLs: valkey:// is redis://, and a CA
// file given as ?ssl_ca_certs= (the Python form) becomes the TLS socket's
// CA. Every connection carries `name`; every client made from it (the
// adapter's readers and subscriber are duplicates) is pushed onto `made`.
function makeClient(url, name, made) {
  const scheme = url.split("://", 1)[0];
  if (/^(redis|valkey)\+cluster$/.test(scheme)) {
    const { hosts, auth, socket } = multiHostUrl(url);
    return tracked(createCluster({
      rootNodes: hosts.map((h) => ({ socket: { ...socket, ...h } })),
      defaults: { name, ...auth, socket },
    }), made);
  }
  if (/^(redis|valkey)\+sentinel$/.test(scheme)) {
    const { hosts, auth, path, socket } = multiHostUrl(url);
    if (path.length < 1 || path.length > 2) {
      throw new Error(`sentinel URL must end with /<db>/<service>: ${url}`);
    }
    const node = { name, ...auth, socket };
    if (path.length === 2) node.database = Number(path[0]);
    return sentinelClient({
      name: path[path.length - 1],
      sentinelRootNodes: hosts,
      nodeClientOptions: node,
      sentinelClientOptions: { socket },
    }, made);
  }
  const parsed = new URL(url.replace(/^valkey(s?):/, "redis$1:"));
  const ca = parsed.searchParams.get("ssl_ca_certs");
  parsed.searchParams.delete("ssl_ca_certs");
  const opts = { url: parsed.toString(), name };
  if (ca) opts.socket = { tls: true, ca: fs.readFileSync(ca) };
  return tracked(createClient(opts), made);
}

// one server on stdin/stdout
if (require.main === module) serve(start, process.argv.slice(2));

module.exports = { start };
