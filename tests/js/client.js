// client.js - one official socket.io-client, driven by JSON commands and
// reporting JSON lines. host.js runs many of them in one Node process, as
// the suite does; `node client.js` runs one on stdin/stdout.
//
//   node client.js <url> [namespace] [options_json]
//
// options are socket.io-client options (auth, reconnectionDelay, ...);
// transports default to ["websocket"], and each client has a connection of
// its own (forceNew), as it would in a process of its own. Every event
// received is reported as {"event": name, "args": [...], "recovered": bool,
// "id": sid} (also "connect", "disconnect", "connect_error"); "ack": true
// when the server asked for an acknowledgement, which is sent only if set
// by `answer`.
//
// Commands: {"id": 1, "cmd": "emit", "event": "e", "args": [], "ack": true}
// -> {"id": 1, "result": [ack args]}; close_transport {hold}, disconnect,
// connect {url}, forget_offset, state, answer {event, value}, close.
"use strict";
const { io } = require("socket.io-client");
const { toPlain, fromPlain, serve } = require("./util");

// One client. `argv` as on the command line; `out(obj)` writes one of its
// lines; `exit(code)` is called once, when it has closed. Returns the
// function that runs one of its commands.
function start(argv, out, exit) {
  const [url, namespace = "/", optsJson = "{}"] = argv;
  const socket = io(url.replace(/\/$/, "") + namespace, {
    transports: ["websocket"],
    forceNew: true,
    ...JSON.parse(optsJson),
  });
  const answers = {}; // event -> value to ack with
  let held = null; // the reconnection setting while close_transport holds

  const report = (event, a, ack = false) => out({
    event, args: toPlain(a), ack, recovered: !!socket.recovered, id: socket.id,
  });
  socket.on("connect", () => report("connect", []));
  socket.on("disconnect", (reason) => report("disconnect", [reason]));
  socket.on("connect_error", (e) => report("connect_error", [e.message]));
  socket.onAny((event, ...a) => {
    const ack = typeof a[a.length - 1] === "function" ? a.pop() : null;
    report(event, a, !!ack);
    if (ack && event in answers) ack(fromPlain(answers[event]));
  });

  let closing = false;
  function shutdown() {
    if (closing) return;
    closing = true;
    socket.close();
    setTimeout(() => exit(0), 50);
  }

  const commands = {
    emit: async (c) => {
      const a = fromPlain(c.args || []);
      if (!c.ack) return void socket.emit(c.event, ...a);
      return new Promise((resolve, reject) => socket.timeout(c.timeout ?? 5000)
        .emit(c.event, ...a, (err, ...res) => (err ? reject(err) : resolve(res))));
    },
    // drop the connection without telling the server: recoverable; with
    // "hold": true the client stays away until `connect` (no auto-reconnect)
    close_transport: (c) => {
      if (c.hold) {
        held = socket.io.reconnection();
        socket.io.reconnection(false);
      }
      socket.io.engine.close();
    },
    disconnect: () => void socket.disconnect(),
    // (re)connect, to another server if "url" is given: the pid and offset
    // the client keeps go along, as after a lost transport
    connect: (c) => {
      if (c.url) socket.io.uri = c.url.replace(/\/$/, "") + namespace;
      if (held !== null) socket.io.reconnection(held);
      held = null;
      socket.connect();
    },
    // forget the last offset received (a private field of socket.io-client
    // 4.8): it reconnects as one that received nothing, with {pid} alone
    forget_offset: () => { socket._lastOffset = undefined; },
    state: () => ({ id: socket.id ?? null, connected: socket.connected,
      recovered: !!socket.recovered }),
    answer: (c) => { answers[c.event] = c.value; },
    close: () => { setImmediate(shutdown); },
  };

  return async function handle(cmd) {
    try {
      const fn = commands[cmd.cmd];
      if (!fn) throw new Error(`unknown command ${cmd.cmd}`);
      out({ id: cmd.id, result: toPlain((await fn(cmd)) ?? null) });
    } catch (e) {
      out({ id: cmd.id ?? null, error: String(e?.message ?? e) });
    }
  };
}

// one client on stdin/stdout
if (require.main === module) serve(start, process.argv.slice(2));

module.exports = { start };
