// util.js - JSON lines and binary rendering shared by server.js and client.js
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

module.exports = { toPlain, fromPlain, out };
