/**
 * Preload for the peer gateway (`node --require ./listen-loopback.cjs ...`): Portkey's server listens on every
 * interface; the benchmark must keep all traffic on 127.0.0.1, so every `listen` is bound to it here.
 */
"use strict";
const net = require("node:net");

const originalListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    // listen({ port, host, ... }, callback)
    args[0] = { ...first, host: "127.0.0.1" };
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    if (args.length > 1 && (typeof args[1] === "string" || args[1] === undefined || args[1] === null)) {
      args[1] = "127.0.0.1";
    } else {
      args.splice(1, 0, "127.0.0.1");
    }
  }
  return originalListen.apply(this, args);
};
