// host.js - the suite's Node.js peers, many in one process: Socket.IO
// servers (server.js) and clients (client.js), made and driven by JSON
// lines on stdin. Loading socket.io, the adapter and node-redis costs
// ~0.45 s of CPU a process: the suite pays it once.
//
//   node host.js
//
// In:  {"peer": N, "start": "server" | "client", "argv": [...]} makes peer
//      N, with the arguments of `node server.js` / `node client.js`;
//      {"peer": N, "id": I, "cmd": ...} is one of its commands.
// Out: every line of peer N, with "peer": N added; {"peer": N, "$exit":
//      code} once it has closed (and forgotten). The process exits when
//      stdin closes.
"use strict";
const readline = require("readline");
const { out, logUncaught } = require("./util");

const kinds = { server: "./server", client: "./client" };
const peers = new Map(); // N -> handle(cmd)

function startPeer(peer, kind, argv) {
  const gone = (code) => {
    if (!peers.has(peer)) return;
    peers.delete(peer);
    out({ peer, $exit: code });
  };
  try {
    if (!Object.hasOwn(kinds, kind)) throw new Error(`unknown peer ${kind}`);
    const { start } = require(kinds[kind]);
    peers.set(peer, null);
    peers.set(peer, start(argv, (obj) => out({ ...obj, peer }), gone));
  } catch (e) {
    console.error(`peer ${peer}:`, e);
    peers.set(peer, null);
    gone(1);
  }
}

function onLine(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    return void console.error(`not JSON: ${line}`);
  }
  if (msg.start !== undefined) return startPeer(msg.peer, msg.start, msg.argv || []);
  const handle = peers.get(msg.peer);
  if (!handle) return void out({ peer: msg.peer, id: msg.id ?? null,
    error: `no peer ${msg.peer}` });
  const { peer, ...cmd } = msg;
  handle(cmd);
}

logUncaught();
readline.createInterface({ input: process.stdin })
  .on("line", onLine)
  .on("close", () => process.exit(0));
