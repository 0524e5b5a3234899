// connect-web in a real browser: bundled by run.mjs (esbuild) into interop/gen/browser/.
// Reads the API base URL from `?api=` (another origin than the page: CORS is real) and
// an optional `&cases=a,b`; runs every case with Connect and gRPC-Web, binary and JSON;
// writes one <li class="result" data-name data-status data-reason> per case, then
// <div id="done" data-passed data-failed>.
import { create, createRegistry, equals } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  ErrorInfoSchema,
  InteropService,
  file_volley_interop_v1_interop,
} from "../gen/es/volley/interop/v1/interop_pb.js";

const params = new URLSearchParams(location.search);
const api = params.get("api");
const only = (params.get("cases") ?? "").split(",").filter(Boolean);
const registry = createRegistry(file_volley_interop_v1_interop);

const transports = [
  { label: "connect+proto", make: (o) => createConnectTransport({ ...o, useBinaryFormat: true }) },
  { label: "connect+json", make: (o) => createConnectTransport({ ...o, useBinaryFormat: false }) },
  { label: "grpcweb+proto", make: (o) => createGrpcWebTransport({ ...o, useBinaryFormat: true }) },
  { label: "grpcweb+json", make: (o) => createGrpcWebTransport({ ...o, useBinaryFormat: false }) },
];

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}
function eq(actual, expected, what) {
  const a = JSON.stringify(actual, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  const e = JSON.stringify(expected, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  check(a === e, `${what}: got ${a}, want ${e}`);
}
function meta() {
  const m = {};
  m.options = { onHeader: (h) => (m.header = h), onTrailer: (t) => (m.trailer = t) };
  return m;
}

const cases = {
  async unary_echo(client) {
    const payload = new Uint8Array([0, 1, 2, 250, 255]);
    const res = await client.echo({ text: "hello browser", payload });
    eq(res.text, "hello browser", "text");
    eq([...res.payload], [...payload], "payload");
    eq(res.deadlineMs, -1n, "deadline_ms");
  },
  async custom_header(client) {
    const m = meta();
    const res = await client.echo({ text: "hdr" }, { ...m.options, headers: { "x-test-echo": "from-browser" } });
    eq(res.headers["x-test-echo"], "from-browser", "request header seen by the server");
    eq(m.header?.get("x-test-echo-header") ?? null, "from-browser", "response header x-test-echo-header (exposed by CORS?)");
    eq(m.trailer?.get("x-test-echo-trailer") ?? null, "from-browser", "response trailer x-test-echo-trailer (exposed by CORS?)");
  },
  async server_stream(client) {
    const got = [];
    for await (const r of client.serverStream({ text: "s", count: 3 })) got.push(r);
    eq(got.map((r) => r.index), [0, 1, 2], "indices");
    eq(got.map((r) => r.text), ["s", "s", "s"], "texts");
  },
  async error(client) {
    const info = create(ErrorInfoSchema, { reason: "BROWSER", domain: "volley.test" });
    try {
      await client.echo({
        error: { code: Code.PermissionDenied, message: "no entry", details: [anyPack(ErrorInfoSchema, info)] },
      });
    } catch (e) {
      const err = ConnectError.from(e);
      eq(Code[err.code], Code[Code.PermissionDenied], "code");
      eq(err.rawMessage, "no entry", "message");
      const details = err.findDetails(ErrorInfoSchema);
      check(details.length === 1 && equals(ErrorInfoSchema, details[0], info), "ErrorInfo detail");
      return;
    }
    throw new Error("succeeded, want permission_denied");
  },
  async server_stream_error(client) {
    const got = [];
    try {
      for await (const r of client.serverStream({
        text: "e",
        count: 4,
        failAfter: 2,
        error: { code: Code.Unavailable, message: "gone" },
      })) {
        got.push(r);
      }
    } catch (e) {
      eq(Code[ConnectError.from(e).code], Code[Code.Unavailable], "code");
      eq(got.length, 2, "messages before the error");
      return;
    }
    throw new Error("succeeded, want unavailable");
  },
};

function report(name, status, reason = "") {
  const li = document.createElement("li");
  li.className = `result ${status.toLowerCase()}`;
  li.dataset.name = name;
  li.dataset.status = status;
  li.dataset.reason = reason;
  li.textContent = `${status} ${name}${reason ? `: ${reason}` : ""}`;
  document.getElementById("results").append(li);
}

async function main() {
  document.getElementById("api").textContent = api ?? "(missing ?api=)";
  let passed = 0;
  let failed = 0;
  if (!api) {
    report("setup", "FAIL", "no ?api= parameter");
    failed++;
  } else {
    for (const t of transports) {
      const client = createClient(
        InteropService,
        t.make({ baseUrl: api, jsonOptions: { registry } }),
      );
      for (const [name, fn] of Object.entries(cases)) {
        if (only.length && !only.includes(name)) continue;
        const full = `${t.label}/${name}`;
        try {
          await Promise.race([
            fn(client),
            new Promise((_, reject) => setTimeout(() => reject(new Error("timed out after 10 s")), 10000)),
          ]);
          report(full, "PASS");
          passed++;
        } catch (e) {
          report(full, "FAIL", String(e?.message ?? e));
          failed++;
        }
      }
    }
  }
  const done = document.createElement("div");
  done.id = "done";
  done.dataset.passed = String(passed);
  done.dataset.failed = String(failed);
  done.textContent = `${passed} passed, ${failed} failed`;
  document.body.append(done);
}

main().catch((e) => {
  report("page", "FAIL", String(e?.stack ?? e));
  const done = document.createElement("div");
  done.id = "done";
  done.dataset.passed = "0";
  done.dataset.failed = "1";
  document.body.append(done);
});
