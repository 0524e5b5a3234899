// The InteropService semantics (see interop/README.md), written against connect-node's
// handler API. Shared by server.mjs; kept apart so the rules read in one place.
import {
  Code,
  ConnectError,
  createContextKey,
  decodeBinaryHeader,
  encodeBinaryHeader,
} from "@connectrpc/connect";

/** Context key holding the raw request header lines, [[lowercase name, value], ...]. */
export const kRawHeaders = createContextKey([], { description: "raw request headers" });

/** For connectNodeAdapter's contextValues: capture header lines before Headers joins them. */
export function rawHeaderLines(req) {
  const raw = req.rawHeaders ?? [];
  const lines = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    lines.push([String(raw[i]).toLowerCase(), String(raw[i + 1])]);
  }
  return lines;
}

/** A `-bin` value re-encoded as unpadded standard base64 (the wire may pad or not). */
function canonicalBin(value) {
  try {
    return encodeBinaryHeader(decodeBinaryHeader(value));
  } catch {
    return value;
  }
}

/** Request headers named `x-test-*`, repeated values joined with "," (no space);
 *  `-bin` values as unpadded standard base64. */
function testHeaders(ctx) {
  const out = {};
  const lines = ctx.values.get(kRawHeaders);
  if (lines.length > 0) {
    for (const [name, raw] of lines) {
      if (!name.startsWith("x-test-")) continue;
      const value = name.endsWith("-bin") ? canonicalBin(raw) : raw;
      out[name] = name in out ? `${out[name]},${value}` : value;
    }
  } else {
    // No raw lines (should not happen with node's http/http2): fall back to Headers.
    ctx.requestHeader.forEach((value, name) => {
      if (name.startsWith("x-test-")) out[name] = value;
    });
  }
  return out;
}

/** Header echo: x-test-echo -> header x-test-echo-header + trailer x-test-echo-trailer;
 *  x-test-bin-bin -> header x-test-bin-bin (same wire value). Call before the first send. */
function echoMetadata(ctx) {
  const echo = ctx.requestHeader.get("x-test-echo");
  if (echo !== null) {
    ctx.responseHeader.set("x-test-echo-header", echo);
    ctx.responseTrailer.set("x-test-echo-trailer", echo);
  }
  const bin = ctx.requestHeader.get("x-test-bin-bin");
  if (bin !== null) {
    ctx.responseHeader.set("x-test-bin-bin", bin);
  }
}

function deadlineMs(ctx) {
  const t = ctx.timeoutMs();
  return t === undefined ? -1n : BigInt(Math.max(0, Math.floor(t)));
}

function payloadFor(req) {
  if (req.responseSize > 0) return new Uint8Array(req.responseSize).fill(0x78);
  return req.payload;
}

/** The ConnectError an ErrorSpec asks for; details are relayed as given (raw Any). */
function errorFrom(spec) {
  const code = spec.code >= 1 && spec.code <= 16 ? spec.code : Code.Unknown;
  const err = new ConnectError(spec.message, code);
  err.details = spec.details.map((any) => ({
    type: any.typeUrl.substring(any.typeUrl.lastIndexOf("/") + 1),
    value: any.value,
  }));
  return err;
}

function hasError(req) {
  return req.error !== undefined && req.error.code !== 0;
}

/** Sleeps, but gives up with the handler's abort reason (deadline, cancel). */
function sleep(ms, signal) {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(ConnectError.from(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason, Code.Canceled));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, Number(ms));
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function response(req, ctx, fields) {
  return {
    text: req.text,
    payload: payloadFor(req),
    headers: testHeaders(ctx),
    deadlineMs: deadlineMs(ctx),
    index: 0,
    received: 1,
    ...fields,
  };
}

export const interopService = {
  async echo(req, ctx) {
    echoMetadata(ctx);
    await sleep(req.delayMs, ctx.signal);
    if (hasError(req)) throw errorFrom(req.error);
    return response(req, ctx, {});
  },

  async *serverStream(req, ctx) {
    echoMetadata(ctx);
    const failing = hasError(req);
    for (let i = 0; i < req.count; i++) {
      if (failing && i === req.failAfter) throw errorFrom(req.error);
      await sleep(req.delayMs, ctx.signal);
      yield response(req, ctx, { index: i });
    }
    if (failing) throw errorFrom(req.error);
  },

  async clientStream(reqs, ctx) {
    echoMetadata(ctx);
    const texts = [];
    const payloads = [];
    let firstError;
    for await (const req of reqs) {
      await sleep(req.delayMs, ctx.signal);
      texts.push(req.text);
      payloads.push(req.payload);
      if (firstError === undefined && hasError(req)) firstError = req.error;
    }
    if (firstError !== undefined) throw errorFrom(firstError);
    const size = payloads.reduce((n, p) => n + p.length, 0);
    const payload = new Uint8Array(size);
    let at = 0;
    for (const p of payloads) {
      payload.set(p, at);
      at += p.length;
    }
    return {
      text: texts.join(" "),
      payload,
      headers: testHeaders(ctx),
      deadlineMs: deadlineMs(ctx),
      index: 0,
      received: texts.length,
    };
  },

  async *bidi(reqs, ctx) {
    echoMetadata(ctx);
    let i = 0;
    for await (const req of reqs) {
      if (hasError(req)) throw errorFrom(req.error);
      await sleep(req.delayMs, ctx.signal);
      yield response(req, ctx, { index: i, received: i + 1 });
      i++;
    }
  },
};
