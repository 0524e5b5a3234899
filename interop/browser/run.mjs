#!/usr/bin/env node
// Runs the connect-web page in Debian's Chromium against an InteropService server.
//
//   node interop/browser/run.mjs --api http://127.0.0.1:API_PORT [--screenshot out.png]
//        [--cases a,b] [--chromium /usr/bin/chromium] [--timeout-ms 90000]
//
// Bundles browser/page.mjs with esbuild into interop/gen/browser/, serves the page from
// its own 127.0.0.1 port (so every call is cross-origin and the server's CORS answers are
// exercised), drives Chromium with playwright-core, reads the results from the DOM and
// prints `PASS name` / `FAIL name: reason`, then `N passed, N failed`. Exits 1 on failure.
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.join(here, "..", "gen", "browser");

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    api: { type: "string" },
    screenshot: { type: "string" },
    cases: { type: "string", default: "" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    "timeout-ms": { type: "string", default: "90000" },
    help: { type: "boolean", short: "h", default: false },
  },
});
const api = (args.api ?? positionals[0])?.replace(/\/+$/, "");
if (args.help || !api) {
  console.error("usage: run.mjs --api http://127.0.0.1:PORT [--screenshot out.png] [--cases a,b] [--chromium PATH]");
  process.exit(args.help ? 0 : 2);
}

// 1. Bundle the page.
mkdirSync(outDir, { recursive: true });
await esbuild.build({
  entryPoints: [path.join(here, "page.mjs")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  outfile: path.join(outDir, "page.js"),
  logLevel: "warning",
});

// 2. Serve it from its own origin.
const files = {
  "/": ["text/html; charset=utf-8", path.join(here, "index.html")],
  "/page.js": ["text/javascript; charset=utf-8", path.join(outDir, "page.js")],
};
const pageServer = http.createServer((req, res) => {
  const file = files[new URL(req.url, "http://x").pathname];
  if (!file) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": file[0], "cache-control": "no-store" });
  res.end(readFileSync(file[1]));
});
await new Promise((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
const pageUrl = new URL(`http://127.0.0.1:${pageServer.address().port}/`);
pageUrl.searchParams.set("api", api);
if (args.cases) pageUrl.searchParams.set("cases", args.cases);

// 3. Drive Chromium (never a downloaded browser: the Debian one, fresh profile).
const profile = mkdtempSync(path.join(os.tmpdir(), "volley-chromium-"));
let context;
let failed = 0;
let passed = 0;
const consoleLines = [];
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1000, height: 900 },
    timeout: 60000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => consoleLines.push(`console.${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => consoleLines.push(`pageerror: ${err.message}`));
  console.log(`# connect-web in ${context.browser()?.version() ?? "chromium"}: page ${pageUrl.origin}, api ${api}`);
  await page.goto(pageUrl.href);
  await page.waitForSelector("#done", { timeout: Number(args["timeout-ms"]), state: "attached" });
  const results = await page.$$eval("li.result", (lis) =>
    lis.map((li) => ({ name: li.dataset.name, status: li.dataset.status, reason: li.dataset.reason })),
  );
  for (const r of results) {
    if (r.status === "PASS") {
      console.log(`PASS ${r.name}`);
      passed++;
    } else {
      console.log(`FAIL ${r.name}: ${r.reason.replace(/\s+/g, " ")}`);
      failed++;
    }
  }
  if (results.length === 0) {
    console.log("FAIL page: no results");
    failed++;
  }
  if (args.screenshot) {
    mkdirSync(path.dirname(path.resolve(args.screenshot)), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
    console.log(`# screenshot: ${args.screenshot}`);
  }
} catch (e) {
  console.log(`FAIL browser: ${String(e?.message ?? e).split("\n")[0]}`);
  failed++;
} finally {
  if (failed > 0) for (const line of consoleLines) console.log(`# ${line}`);
  await context?.close().catch(() => {});
  pageServer.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
