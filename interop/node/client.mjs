#!/usr/bin/env node
// connect-node client: runs a suite of cases against an InteropService server.
//
//   node interop/node/client.mjs --url http://127.0.0.1:PORT
//        [--protocol connect|grpc|grpcweb] [--codec proto|json] [--http 1.1|2]
//        [--compression identity|gzip|br] [--cases a,b,...] [--skip a,b,...]
//        [--case-timeout-ms N] [--list]
//
// Prints `PASS name`, `FAIL name: reason` or `SKIP name: reason` per case, then
// `N passed, N failed` (and skipped); exits 1 if any case failed, 2 on bad arguments.
import { parseArgs } from "node:util";
import { create, createRegistry, equals } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createClient,
  decodeBinaryHeader,
  encodeBinaryHeader,
} from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import { createTransport as createConnectProtocolTransport } from "@connectrpc/connect/protocol-connect";
import { createTransport as createGrpcProtocolTransport } from "@connectrpc/connect/protocol-grpc";
import { createTransport as createGrpcWebProtocolTransport } from "@connectrpc/connect/protocol-grpc-web";
import {
  Http2SessionManager,
  compressionBrotli,
  compressionGzip,
  createNodeHttpClient,
} from "@connectrpc/connect-node";
import {
  ErrorInfoSchema,
  InteropService,
  file_volley_interop_v1_interop,
} from "../gen/es/volley/interop/v1/interop_pb.js";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    protocol: { type: "string", default: "connect" },
    codec: { type: "string", default: "proto" },
    http: { type: "string", default: "2" },
    compression: { type: "string", default: "identity" },
    cases: { type: "string" },
    skip: { type: "string" },
    "case-timeout-ms": { type: "string", default: "20000" },
    list: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

function usage(msg) {
  if (msg) console.error(`client.mjs: ${msg}`);
  console.error(
    "usage: client.mjs --url http://127.0.0.1:PORT [--protocol connect|grpc|grpcweb] " +
      "[--codec proto|json] [--http 1.1|2] [--compression identity|gzip|br] [--cases a,b] [--skip a,b] [--list]",
  );
  process.exit(msg ? 2 : 0);
}
if (args.help) usage();
const oneOf = (name, allowed) => {
  if (!allowed.includes(args[name])) usage(`--${name} must be one of ${allowed.join(", ")}`);
};
oneOf("protocol", ["connect", "grpc", "grpcweb"]);
oneOf("codec", ["proto", "json"]);
oneOf("http", ["1.1", "2"]);
oneOf("compression", ["identity", "gzip", "br"]);

const cfg = {
  protocol: args.protocol,
  binary: args.codec === "proto",
  http: args.http,
  compression: { identity: null, gzip: compressionGzip, br: compressionBrotli }[args.compression],
};
const registry = createRegistry(file_volley_interop_v1_interop);

// --- transport --------------------------------------------------------------------
// Built from connect-node's own HTTP client and the protocol transports, wrapped so the
// cases can see what went over the wire (method, request and response headers).
const wire = { requests: [] };
let sessionManager;
function makeTransport({ useHttpGet = false } = {}) {
  // connect-node's gRPC transport always uses HTTP/2; the others follow --http.
  const httpVersion = cfg.protocol === "grpc" ? "2" : cfg.http;
  let inner;
  if (httpVersion === "2") {
    sessionManager ??= new Http2SessionManager(args.url);
    inner = createNodeHttpClient({ httpVersion: "2", sessionProvider: () => sessionManager });
  } else {
    inner = createNodeHttpClient({ httpVersion: "1.1" });
  }
  const httpClient = async (req) => {
    const record = { method: req.method, url: req.url, header: new Headers(req.header) };
    wire.requests.push(record);
    const res = await inner(req);
    record.status = res.status;
    record.responseHeader = res.header;
    return res;
  };
  const options = {
    httpClient,
    baseUrl: args.url,
    useBinaryFormat: cfg.binary,
    interceptors: [],
    jsonOptions: { registry },
    acceptCompression: cfg.compression ? [cfg.compression] : [],
    sendCompression: cfg.compression,
    compressMinBytes: 1024,
    readMaxBytes: 0xffffffff,
    writeMaxBytes: 0xffffffff,
    useHttpGet,
  };
  switch (cfg.protocol) {
    case "connect":
      return createConnectProtocolTransport(options);
    case "grpc":
      return createGrpcProtocolTransport(options);
    default:
      return createGrpcWebProtocolTransport(options);
  }
}
const client = createClient(InteropService, makeTransport());

// --- helpers ----------------------------------------------------------------------
class CheckError extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckError(msg);
}
function eq(actual, expected, what) {
  const a = typeof actual === "bigint" ? actual.toString() : JSON.stringify(actual);
  const e = typeof expected === "bigint" ? expected.toString() : JSON.stringify(expected);
  check(a === e, `${what}: got ${a}, want ${e}`);
}
function bytesEq(actual, expected, what) {
  check(actual instanceof Uint8Array, `${what}: not bytes`);
  eq(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) throw new CheckError(`${what}: differs at byte ${i}`);
  }
}
/** Runs fn, which must fail with a ConnectError; returns it. */
async function expectError(fn, code, what) {
  try {
    await fn();
  } catch (e) {
    const err = ConnectError.from(e);
    check(
      err.code === code,
      `${what}: got code ${Code[err.code]} (${err.rawMessage}), want ${Code[code]}`,
    );
    return err;
  }
  throw new CheckError(`${what}: succeeded, want ${Code[code]}`);
}
/** Deterministic, poorly compressible bytes (xorshift). */
function noise(n, seed = 0x9e3779b9) {
  const out = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
/** Response metadata collector for CallOptions. */
function meta() {
  const m = { header: undefined, trailer: undefined };
  m.options = {
    onHeader: (h) => (m.header = h),
    onTrailer: (t) => (m.trailer = t),
  };
  return m;
}
function encodingHeaderName(streaming) {
  if (cfg.protocol !== "connect") return "grpc-encoding";
  return streaming ? "connect-content-encoding" : "content-encoding";
}

const ECHO = "echo-value ä";
const BIN = new Uint8Array([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
const HTTP1 = () => cfg.protocol !== "grpc" && cfg.http === "1.1";
const ERROR_INFO = () => create(ErrorInfoSchema, { reason: "TEST_REASON", domain: "volley.test" });
// Non-ASCII and characters gRPC must percent-encode in grpc-message.
const ERROR_MESSAGE = "failed: 100% ünïcödé\r\n{\"quoted\"}";

// --- cases ------------------------------------------------------------------------
// skip(cfg) returns a reason to skip, or undefined.
const cases = [
  {
    name: "unary_echo",
    async run() {
      const m = meta();
      const payload = noise(100);
      const res = await client.echo(
        { text: "hello", payload, sentAt: { seconds: 1700000000n, nanos: 5 } },
        {
          ...m.options,
          headers: [
            ["x-test-echo", encodeURIComponent(ECHO)],
            ["x-test-bin-bin", encodeBinaryHeader(BIN)],
            ["x-test-plain", "plain-value"],
          ],
        },
      );
      eq(res.text, "hello", "text");
      bytesEq(res.payload, payload, "payload");
      eq(res.index, 0, "index");
      eq(res.received, 1, "received");
      eq(res.deadlineMs, -1n, "deadline_ms without a timeout");
      eq(res.headers["x-test-echo"], encodeURIComponent(ECHO), "headers[x-test-echo]");
      eq(res.headers["x-test-plain"], "plain-value", "headers[x-test-plain]");
      check(res.headers["x-test-bin-bin"] !== undefined, "headers[x-test-bin-bin] missing");
      eq(m.header?.get("x-test-echo-header"), encodeURIComponent(ECHO), "response header x-test-echo-header");
      eq(m.trailer?.get("x-test-echo-trailer"), encodeURIComponent(ECHO), "response trailer x-test-echo-trailer");
      const bin = m.header?.get("x-test-bin-bin");
      check(bin != null, "response header x-test-bin-bin missing");
      bytesEq(decodeBinaryHeader(bin), BIN, "x-test-bin-bin round trip");
    },
  },
  {
    name: "unary_response_size",
    async run() {
      const res = await client.echo({ text: "sized", responseSize: 5000 });
      bytesEq(res.payload, new Uint8Array(5000).fill(0x78), "payload of response_size 5000");
    },
  },
  {
    name: "unary_repeated_header",
    async run() {
      const headers = new Headers();
      headers.append("x-test-multi", "a");
      headers.append("x-test-multi", "b");
      const res = await client.echo({ text: "multi" }, { headers });
      // Headers joins repeated values with ", " on the way out; servers join with ",".
      const v = res.headers["x-test-multi"];
      check(v === "a,b" || v === "a, b", `headers[x-test-multi]: got ${JSON.stringify(v)}, want "a,b"`);
    },
  },
  {
    name: "unary_deadline_propagated",
    async run() {
      const res = await client.echo({ text: "deadline" }, { timeoutMs: 5000 });
      // Clients may round the timeout up on the wire; allow a little slack.
      check(res.deadlineMs > 0n && res.deadlineMs <= 5100n, `deadline_ms ${res.deadlineMs} not in (0, 5100]`);
    },
  },
  {
    name: "unary_get",
    skip: () => (cfg.protocol !== "connect" ? "Connect GET is a Connect-protocol feature" : undefined),
    async run() {
      const getClient = createClient(InteropService, makeTransport({ useHttpGet: true }));
      const before = wire.requests.length;
      const m = meta();
      const res = await getClient.echo({ text: "via get" }, { ...m.options, headers: { "x-test-echo": "g" } });
      eq(res.text, "via get", "text");
      eq(wire.requests[before]?.method, "GET", "HTTP method");
      eq(m.header?.get("x-test-echo-header"), "g", "response header x-test-echo-header");
    },
  },
  {
    name: "unary_error",
    async run() {
      const detail = anyPack(ErrorInfoSchema, ERROR_INFO());
      const err = await expectError(
        () =>
          client.echo(
            { text: "err", error: { code: Code.FailedPrecondition, message: ERROR_MESSAGE, details: [detail] } },
            { headers: { "x-test-echo": "on-error" } },
          ),
        Code.FailedPrecondition,
        "error",
      );
      eq(err.rawMessage, ERROR_MESSAGE, "error message");
      const infos = err.findDetails(ErrorInfoSchema);
      eq(infos.length, 1, "ErrorInfo details");
      check(equals(ErrorInfoSchema, infos[0], ERROR_INFO()), `ErrorInfo: got ${JSON.stringify(infos[0])}`);
      eq(err.metadata.get("x-test-echo-header"), "on-error", "error metadata x-test-echo-header");
      eq(err.metadata.get("x-test-echo-trailer"), "on-error", "error metadata x-test-echo-trailer");
    },
  },
  {
    name: "unary_error_codes",
    async run() {
      for (let code = 1; code <= 16; code++) {
        await expectError(
          () => client.echo({ error: { code, message: `code ${code}` } }),
          code,
          `code ${Code[code]}`,
        );
      }
    },
  },
  {
    name: "unary_deadline_exceeded",
    async run() {
      const started = Date.now();
      await expectError(
        () => client.echo({ text: "slow", delayMs: 3000n }, { timeoutMs: 200 }),
        Code.DeadlineExceeded,
        "slow call",
      );
      check(Date.now() - started < 2500, `took ${Date.now() - started} ms, deadline 200 ms`);
    },
  },
  {
    name: "server_stream",
    async run() {
      const m = meta();
      const got = [];
      for await (const res of client.serverStream(
        { text: "stream", count: 3 },
        { ...m.options, headers: { "x-test-echo": "s" } },
      )) {
        got.push(res);
      }
      eq(got.length, 3, "messages");
      eq(got.map((r) => r.index), [0, 1, 2], "indices");
      eq(got.map((r) => r.text), ["stream", "stream", "stream"], "texts");
      eq(m.header?.get("x-test-echo-header"), "s", "response header x-test-echo-header");
      eq(m.trailer?.get("x-test-echo-trailer"), "s", "response trailer x-test-echo-trailer");
    },
  },
  {
    name: "server_stream_error",
    async run() {
      const got = [];
      const detail = anyPack(ErrorInfoSchema, ERROR_INFO());
      const err = await expectError(
        async () => {
          for await (const res of client.serverStream({
            text: "partial",
            count: 5,
            failAfter: 2,
            error: { code: Code.ResourceExhausted, message: "stop here", details: [detail] },
          })) {
            got.push(res);
          }
        },
        Code.ResourceExhausted,
        "stream error",
      );
      eq(got.length, 2, "messages before the error");
      eq(err.rawMessage, "stop here", "error message");
      eq(err.findDetails(ErrorInfoSchema).length, 1, "ErrorInfo details");
    },
  },
  {
    name: "client_stream",
    async run() {
      const m = meta();
      async function* reqs() {
        yield { text: "a", payload: new Uint8Array([1, 2]) };
        yield { text: "b", payload: new Uint8Array([3]) };
        yield { text: "c", payload: new Uint8Array([4, 5, 6]) };
      }
      const res = await client.clientStream(reqs(), { ...m.options, headers: { "x-test-echo": "c" } });
      eq(res.text, "a b c", "text");
      eq(res.received, 3, "received");
      bytesEq(res.payload, new Uint8Array([1, 2, 3, 4, 5, 6]), "payload");
      eq(m.header?.get("x-test-echo-header"), "c", "response header x-test-echo-header");
      eq(m.trailer?.get("x-test-echo-trailer"), "c", "response trailer x-test-echo-trailer");
    },
  },
  {
    name: "client_stream_error",
    async run() {
      async function* reqs() {
        yield { text: "a" };
        yield { text: "b", error: { code: Code.InvalidArgument, message: "bad b" } };
        yield { text: "c" };
      }
      const err = await expectError(() => client.clientStream(reqs()), Code.InvalidArgument, "client stream");
      eq(err.rawMessage, "bad b", "error message");
    },
  },
  {
    name: "bidi",
    skip: () => (HTTP1() ? "full-duplex bidi needs HTTP/2" : undefined),
    async run() {
      // Ping-pong: the next request is sent only after the previous response arrived,
      // which deadlocks unless both directions really stream at once.
      const input = createWritableIterable();
      const m = meta();
      const out = client.bidi(input, { ...m.options, headers: { "x-test-echo": "b" } })[Symbol.asyncIterator]();
      for (let i = 0; i < 3; i++) {
        await input.write({ text: `ping ${i}` });
        const r = await out.next();
        check(!r.done, `stream ended before response ${i}`);
        eq(r.value.text, `ping ${i}`, `text ${i}`);
        eq(r.value.index, i, `index ${i}`);
        eq(r.value.received, i + 1, `received ${i}`);
      }
      input.close();
      const end = await out.next();
      check(end.done, "extra response after close");
      eq(m.header?.get("x-test-echo-header"), "b", "response header x-test-echo-header");
      eq(m.trailer?.get("x-test-echo-trailer"), "b", "response trailer x-test-echo-trailer");
    },
  },
  {
    name: "bidi_half_duplex",
    async run() {
      async function* reqs() {
        for (let i = 0; i < 3; i++) yield { text: `m${i}` };
      }
      const got = [];
      for await (const r of client.bidi(reqs())) got.push(r);
      eq(got.map((r) => r.text), ["m0", "m1", "m2"], "texts");
      eq(got.map((r) => r.received), [1, 2, 3], "received");
    },
  },
  {
    name: "bidi_error",
    skip: () => (HTTP1() ? "full-duplex bidi needs HTTP/2" : undefined),
    async run() {
      async function* reqs() {
        yield { text: "ok" };
        yield { text: "boom", error: { code: Code.Aborted, message: "bidi failed" } };
      }
      const got = [];
      const err = await expectError(
        async () => {
          for await (const r of client.bidi(reqs())) got.push(r);
        },
        Code.Aborted,
        "bidi",
      );
      eq(got.length, 1, "responses before the error");
      eq(err.rawMessage, "bidi failed", "error message");
    },
  },
  {
    name: "large_payload",
    async run() {
      // 1 MiB each way; half noise, half text so compression has something to do.
      const payload = new Uint8Array(1 << 20);
      payload.set(noise(1 << 19));
      payload.fill(0x61, 1 << 19);
      const before = wire.requests.length;
      const res = await client.echo({ text: "large", payload });
      bytesEq(res.payload, payload, "1 MiB payload");
      const rec = wire.requests[before];
      const name = encodingHeaderName(false);
      const want = cfg.compression ? cfg.compression.name : null;
      eq(rec.header.get(name), want, `request ${name}`);
      const got = rec.responseHeader.get(name);
      check(
        want ? got === want : got === null || got === "identity",
        `response ${name}: got ${got}, want ${want ?? "none"}`,
      );
    },
  },
  {
    name: "large_stream_compressed",
    async run() {
      const before = wire.requests.length;
      const got = [];
      for await (const r of client.serverStream({ text: "big", count: 2, responseSize: 300000 })) got.push(r);
      eq(got.length, 2, "messages");
      for (const r of got) bytesEq(r.payload, new Uint8Array(300000).fill(0x78), "payload");
      const name = encodingHeaderName(true);
      const resEnc = wire.requests[before].responseHeader.get(name);
      const want = cfg.compression ? cfg.compression.name : null;
      check(
        want ? resEnc === want : resEnc === null || resEnc === "identity",
        `response ${name}: got ${resEnc}, want ${want ?? "none"}`,
      );
    },
  },
];

if (args.list) {
  for (const c of cases) console.log(c.name);
  process.exit(0);
}
function caseList(flag) {
  const names = (args[flag] ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((w) => !cases.some((c) => c.name === w));
  if (unknown.length) usage(`--${flag}: unknown case(s): ${unknown.join(", ")} (see --list)`);
  return names;
}
const only = caseList("cases");
const skipped_by_flag = caseList("skip");
const selected = only.length ? cases.filter((c) => only.includes(c.name)) : cases;

// --- run --------------------------------------------------------------------------
const caseTimeout = Number(args["case-timeout-ms"]);
console.log(
  `# connect-node client: ${args.url} protocol=${cfg.protocol} codec=${args.codec} ` +
    `http=${cfg.protocol === "grpc" ? "2 (gRPC is always HTTP/2 here)" : cfg.http} compression=${args.compression}`,
);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const c of selected) {
  const reason =
    cfg.protocol === "grpc" && cfg.http === "1.1"
      ? "connect-node's gRPC client only speaks HTTP/2"
      : skipped_by_flag.includes(c.name)
        ? "--skip"
        : c.skip?.();
  if (reason) {
    console.log(`SKIP ${c.name}: ${reason}`);
    skipped++;
    continue;
  }
  let timer;
  try {
    await Promise.race([
      c.run(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new CheckError(`timed out after ${caseTimeout} ms`)), caseTimeout);
      }),
    ]);
    console.log(`PASS ${c.name}`);
    passed++;
  } catch (e) {
    const msg = e instanceof CheckError ? e.message : `unexpected ${e instanceof ConnectError ? "error" : "exception"}: ${e?.message ?? e}`;
    console.log(`FAIL ${c.name}: ${msg.replace(/\s+/g, " ")}`);
    failed++;
  } finally {
    clearTimeout(timer);
  }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
sessionManager?.abort();
process.exit(failed > 0 ? 1 : 0);
