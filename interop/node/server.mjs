#!/usr/bin/env node
// connect-node server for volley.interop.v1.InteropService: Connect, gRPC and gRPC-Web,
// proto and JSON, gzip and br, on HTTP/1.1 (--http1) or h2c (--h2c, the default).
// Answers CORS preflights for any origin so a browser page on another port can call it.
//
//   node interop/node/server.mjs [--port N] [--host 127.0.0.1] [--http1 | --h2c] [--no-cors]
//        [--verbose]
//
// Prints `LISTENING <port>` on stdout once it accepts connections (--port 0 = ephemeral).
import * as http from "node:http";
import * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { cors as connectCors, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createRegistry } from "@bufbuild/protobuf";
import { InteropService, file_volley_interop_v1_interop } from "../gen/es/volley/interop/v1/interop_pb.js";
import { interopService, kRawHeaders, rawHeaderLines } from "./service.mjs";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    http1: { type: "boolean", default: false },
    h2c: { type: "boolean", default: false },
    "no-cors": { type: "boolean", default: false },
    verbose: { type: "boolean", short: "v", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  console.log("usage: server.mjs [--port N] [--host H] [--http1 | --h2c] [--no-cors] [--verbose]");
  process.exit(0);
}
if (args.http1 && args.h2c) {
  console.error("server.mjs: choose one of --http1 and --h2c");
  process.exit(2);
}

// Headers our tests send or read beyond the protocols' own (see cors.allowedHeaders).
const testHeaderNames = ["x-test-echo", "x-test-bin-bin", "x-test-a", "x-test-b"];
const exposed = [
  ...connectCors.exposedHeaders,
  "x-test-echo-header",
  "x-test-echo-trailer",
  "trailer-x-test-echo-trailer",
  "x-test-bin-bin",
];

const rpc = connectNodeAdapter({
  routes: (router) => router.service(InteropService, interopService),
  // Lets JSON clients send error details (google.protobuf.Any) of the test's own types.
  jsonOptions: { registry: createRegistry(file_volley_interop_v1_interop) },
  contextValues: (req) => createContextValues().set(kRawHeaders, rawHeaderLines(req)),
});

function handler(req, res) {
  if (args.verbose) {
    console.error(`${req.method} ${req.url} http/${req.httpVersion} ${req.headers["content-type"] ?? ""}`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !args["no-cors"]) {
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "origin");
    if (req.method === "OPTIONS") {
      const requested = req.headers["access-control-request-headers"] ?? "";
      const allow = new Set([...connectCors.allowedHeaders, ...testHeaderNames].map((h) => h.toLowerCase()));
      for (const h of requested.split(",")) if (h.trim()) allow.add(h.trim().toLowerCase());
      res.writeHead(204, {
        "access-control-allow-methods": connectCors.allowedMethods.join(", "),
        "access-control-allow-headers": [...allow].join(", "),
        "access-control-max-age": "7200",
      });
      res.end();
      return;
    }
    res.setHeader("access-control-expose-headers", exposed.join(", "));
  }
  rpc(req, res);
}

const server = args.http1 ? http.createServer(handler) : http2.createServer({}, handler);
if (!args.http1) {
  // Node's http2 compat layer: tolerate stream errors without crashing the server.
  server.on("sessionError", (err) => args.verbose && console.error("session error:", err.message));
}

server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  console.log(`LISTENING ${port}`);
  if (args.verbose) {
    console.error(`serving ${args.http1 ? "HTTP/1.1" : "h2c"} on ${args.host}:${port}`);
  }
});

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
