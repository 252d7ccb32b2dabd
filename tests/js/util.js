// util.js - JSON lines, binary rendering and the stdin/stdout loop shared by
// server.js, client.js and host.js
"use strict";

// Buffers/typed arrays -> {"$bin_hex": "..."}; Sets -> arrays; functions
// dropped by JSON. A plain {"type": "Buffer", "data": [...]} object (what
// onlyPlaintext delivers) is left as it is.
function toPlain(v) {
  if (v instanceof ArrayBuffer) return { $bin_hex: Buffer.from(v).toString("hex") };
  if (ArrayBuffer.isView(v)) {
    const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    return { $bin_hex: bytes.toString("hex") };
  }
  if (Array.isArray(v) || v instanceof Set) return [...v].map(toPlain);
  if (v && typeof v === "object" && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPlain(x)]));
  }
  return v;
}

// {"$bin_hex": "..."} -> Buffer, recursively
function fromPlain(v) {
  if (Array.isArray(v)) return v.map(fromPlain);
  if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && typeof v.$bin_hex === "string") {
      return Buffer.from(v.$bin_hex, "hex");
    }
    return Object.fromEntries(keys.map((k) => [k, fromPlain(v[k])]));
  }
  return v;
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// Errors of one peer are logged, never the end of the process (host.js
// runs many). Not the adapter's readers calling disconnect() on a client
// a server's shutdown has closed already (dist/adapter.js, startPolling).
function logUncaught() {
  process.on("uncaughtException", (e) => console.error("uncaught:", e));
  process.on("unhandledRejection", (e) => {
    if (e?.message !== "The client is closed") console.error("unhandled:", e);
  });
}

// One peer made by `start(argv, out, exit)` (server.js, client.js) on
// stdin/stdout: a command a line in; it closes when stdin does.
function serve(start, argv) {
  const readline = require("readline");
  logUncaught();
  const handle = start(argv, out, (code) => process.exit(code));
  readline.createInterface({ input: process.stdin })
    .on("line", (line) => {
      let cmd;
      try {
        cmd = JSON.parse(line);
      } catch (e) {
        return void out({ id: null, error: `not JSON: ${line}` });
      }
      handle(cmd);
    })
    .on("close", () => handle({ cmd: "close" }));
}

module.exports = { toPlain, fromPlain, out, serve, logUncaught };
