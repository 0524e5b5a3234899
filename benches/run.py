#!/usr/bin/env python3
"""The side-by-side load benchmark: Volley (owned and view handlers) against tonic, connectrpc
and raw hyper, driven by h2load. Python 3 standard library only.

For each round, workload, concurrency and contender (contenders in a rotated order each round,
so no one always runs first or last), with a fresh server per run:

1. start the server pinned to CPU 0 (taskset) and wait for it to listen;
2. check the answer with one real request (bench-tool check: HTTP status, grpc-status, the
   decoded response compared with the expected one), since h2load counts gRPC errors as
   successes; a wrong answer fails the run and it is not measured;
3. warm up with h2load, then measure with h2load pinned to CPU 1 (8 h2c connections,
   concurrency / 8 streams each, a fixed body);
4. record req/s, server CPU-seconds per 100k requests (utime + stime from /proc/PID/stat before
   and after the measured run), peak RSS (VmHWM), and how much CPU other processes took on the
   two CPUs meanwhile (from /proc/stat): a run where they took more than 5% is "disturbed".

Writes benches/RESULTS.md (tables of ratios with the min-max spread across rounds, absolute
numbers, machine and versions) and target/bench/results.json (every run).

Usage: scripts/bench.sh [--quick] [--rounds N] [--duration S] [--warmup S]
                        [--concurrency 16,64,256] [--workloads a,b] [--contenders a,b]
                        [--no-build] [--out FILE]
"""

import argparse
import datetime
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, LOAD_CPU = "0", "1"
CONNECTIONS = 8
DISTURBED = 0.05

# name -> (binary, which workloads it serves)
CONTENDERS = {
    "tonic": ("tonic-server", lambda w: w["framing"] == "Grpc"),
    "connectrpc": ("connectrpc-server", lambda w: True),
    "hyper": ("hyper-server", lambda w: w["name"] in ("echo-grpc", "echo-connect")),
    "volley": ("volley-server", lambda w: True),
    "volley-view": ("volley-view-server", lambda w: True),
}
LABELS = {
    "tonic": "tonic 0.14",
    "connectrpc": "connectrpc 0.9",
    "hyper": "raw hyper",
    "volley": "Volley",
    "volley-view": "Volley views",
}


def log(msg):
    print(msg, flush=True)


def run_out(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw).stdout.strip()
    except OSError:
        return ""


def ensure_h2load():
    if shutil.which("h2load") and shutil.which("taskset"):
        return
    log("h2load missing: installing nghttp2-client with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "nghttp2-client", "util-linux"]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def build():
    log("building release binaries: cargo build --release -p volley-benches --bins")
    subprocess.run(
        ["cargo", "build", "--release", "-p", "volley-benches", "--bins"], cwd=ROOT, check=True
    )


def binary(name):
    path = os.path.join(target_dir(), "release", name)
    if not os.access(path, os.X_OK):
        sys.exit(f"missing {path}: build first (drop --no-build)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_busy():
    """Busy seconds per CPU (everything but idle and iowait)."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                busy[m.group(1)] = (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    return busy


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Server:
    def __init__(self, path):
        self.addr = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, path, "--addr", self.addr],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 20
        line = ""
        while time.time() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("listening on"):
                    return
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        err = self.proc.stderr.read() if self.proc.poll() is not None else ""
        self.stop()
        raise RuntimeError(f"{path} did not start: {line.strip()} {err.strip()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def h2load(workload, addr, concurrency, seconds):
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "-c", str(CONNECTIONS)]
    cmd += ["-m", str(max(1, concurrency // CONNECTIONS)), "-D", str(seconds)]
    cmd += ["-d", workload["body"]]
    for h in workload["headers"]:
        cmd += ["-H", h]
    cmd.append(f"http://{addr}{workload['path']}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, out, cpu


def parse_h2load(out):
    rps = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    req = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (rps and req and codes):
        return None
    done, succeeded, failed, errored = (int(req.group(i)) for i in (3, 4, 5, 6))
    return {
        "rps": float(rps.group(3)),
        "done": done,
        "succeeded": succeeded,
        "failed": failed + errored + int(req.group(7)),
        "non2xx": int(codes.group(2)) + int(codes.group(3)) + int(codes.group(4)),
    }


def one_run(args, tool, workload, concurrency, contender, round_no):
    rec = {
        "round": round_no,
        "workload": workload["name"],
        "c": concurrency,
        "contender": contender,
        "ok": False,
    }
    server = Server(binary(CONTENDERS[contender][0]))
    try:
        check = subprocess.run(
            ["taskset", "-c", LOAD_CPU, tool, "check", server.addr, workload["name"]],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            rec["error"] = "check failed: " + (check.stderr or check.stdout).strip()
            return rec
        code, out, _ = h2load(workload, server.addr, concurrency, args.warmup)
        if code != 0:
            rec["error"] = f"warm-up h2load exit {code}: {out[-300:]}"
            return rec
        rec["load_before"] = loadavg()
        cpu0, busy0 = proc_cpu(server.proc.pid), cpu_busy()
        code, out, load_cpu = h2load(workload, server.addr, concurrency, args.duration)
        cpu1, busy1 = proc_cpu(server.proc.pid), cpu_busy()
        rec["rss_mib"] = proc_hwm_kib(server.proc.pid) / 1024
        parsed = parse_h2load(out)
        if code != 0 or parsed is None:
            rec["error"] = f"h2load exit {code}: {out[-300:]}"
            return rec
        if parsed["failed"] or parsed["non2xx"] or parsed["done"] == 0:
            rec["error"] = f"h2load reported failures: {parsed}"
            return rec
        server_cpu = cpu1 - cpu0
        foreign_server = (busy1[SERVER_CPU] - busy0[SERVER_CPU]) - server_cpu
        foreign_load = (busy1[LOAD_CPU] - busy0[LOAD_CPU]) - load_cpu
        rec.update(parsed)
        rec["cpu_per_100k"] = server_cpu / parsed["done"] * 100_000
        rec["foreign"] = max(foreign_server, foreign_load, 0) / args.duration
        rec["disturbed"] = rec["foreign"] > DISTURBED
        rec["ok"] = True
        return rec
    finally:
        server.stop()


def fmt_ratio(values):
    if not values:
        return "–"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}x"
    return f"{med:.2f}x ({min(values):.2f}–{max(values):.2f})"


def fmt_num(v, unit=""):
    if v is None:
        return "–"
    if v >= 10_000:
        return f"{v / 1000:.0f}k{unit}"
    if v >= 1000:
        return f"{v / 1000:.1f}k{unit}"
    if v >= 10:
        return f"{v:.1f}{unit}"
    return f"{v:.2f}{unit}"


def versions():
    lock = open(os.path.join(ROOT, "Cargo.lock")).read()

    def locked(name):
        m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(name), lock)
        return m.group(1) if m else "?"

    commit = run_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    if run_out(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    return {
        "rustc": run_out(["rustc", "-V"]),
        "tonic": locked("tonic"),
        "prost": locked("prost"),
        "connectrpc": locked("connectrpc"),
        "buffa": locked("buffa"),
        "hyper": locked("hyper"),
        "h2": locked("h2"),
        "h2load": run_out(["h2load", "--version"]),
        "volley": commit,
    }


def machine():
    lscpu = run_out(["lscpu"])
    model = re.search(r"Model name:\s*(.+)", lscpu)
    return {
        "cpu": model.group(1).strip() if model else "?",
        "cores": os.cpu_count(),
        "kernel": run_out(["uname", "-sr"]),
    }


def write_results(args, workloads, runs, meta):
    by = {}
    for r in runs:
        if r["ok"]:
            by.setdefault((r["workload"], r["c"], r["contender"]), {})[r["round"]] = r

    def per_round(w, c, who, key):
        return {k: v[key] for k, v in by.get((w, c, who), {}).items()}

    def ratios(w, c, who, base, key, invert=False):
        a, b = per_round(w, c, who, key), per_round(w, c, base, key)
        out = []
        for rnd in sorted(set(a) & set(b)):
            if a[rnd] and b[rnd]:
                out.append(b[rnd] / a[rnd] if invert else a[rnd] / b[rnd])
        return out

    def median(w, c, who, key):
        v = list(per_round(w, c, who, key).values())
        return statistics.median(v) if v else None

    names = [w["name"] for w in workloads]
    titles = {w["name"]: w["title"] for w in workloads}
    served = {w["name"]: [k for k in args.contenders if CONTENDERS[k][1](w)] for w in workloads}
    ok = [r for r in runs if r["ok"]]
    disturbed = [r for r in ok if r.get("disturbed")]
    failed = [r for r in runs if not r["ok"]]
    lines = []
    add = lines.append
    add("# Benchmark results")
    add("")
    add(
        "Written by `scripts/bench.sh` (benches/run.py); do not edit by hand. How it measures: "
        "benches/README.md."
    )
    add("")
    add(f"- date: {meta['date']} UTC; command: `{meta['command']}`")
    m = meta["machine"]
    add(f"- machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}")
    v = meta["versions"]
    add(
        f"- versions: {v['rustc']}; tonic {v['tonic']} (prost {v['prost']}); connectrpc "
        f"{v['connectrpc']} (buffa {v['buffa']}); hyper {v['hyper']}, h2 {v['h2']}; "
        f"{v['h2load']}; Volley at {v['volley']}"
    )
    add(
        f"- method: server pinned to CPU {SERVER_CPU}, h2load to CPU {LOAD_CPU}; "
        f"{CONNECTIONS} h2c connections, concurrency c = streams in flight over them; "
        f"{args.rounds} interleaved round(s); a fresh server per run; {args.warmup} s warm-up "
        f"then {args.duration} s measured; every contender's answer checked before measuring"
    )
    add(
        f"- load average (1 min) at start {meta['load_start']:.2f}, at end {meta['load_end']:.2f}; "
        f"{len(disturbed)} of {len(ok)} measured runs disturbed (other processes took more "
        f"than {DISTURBED:.0%} of a benchmark CPU during the measurement; the largest share "
        f"was {max([r['foreign'] for r in ok] or [0]):.0%})"
    )
    if ok and len(disturbed) * 2 > len(ok):
        add(
            "- **most runs were disturbed**: other processes competed for the benchmark's CPUs, "
            "so absolute numbers are far below this machine's and even ratios (each measured in "
            "the same round) carry the noise shown by their spread; rerun on an idle machine "
            "before drawing conclusions"
        )
    if failed:
        add(f"- {len(failed)} run(s) failed and were not measured:")
        for r in failed:
            add(f"  - round {r['round']} {r['workload']} c={r['c']} {r['contender']}: {r['error'][:200]}")
    add("")
    add(
        "Ratios are the median over rounds of the per-round ratio (both measured in the same "
        "round), with the min–max across rounds in parentheses. Higher is better for req/s; "
        "for CPU per request a ratio below 1 means less CPU than the baseline."
    )

    def ratio_table(title, key, invert, baseline_of):
        add("")
        add(f"## {title}")
        add("")
        cols = [k for k in args.contenders]
        add("| workload | c | baseline | " + " | ".join(LABELS[k] for k in cols) + " |")
        add("|---|--:|---|" + "--:|" * len(cols))
        for w in names:
            base = baseline_of(w)
            if base not in served[w]:
                continue
            for c in args.concurrency:
                cells = []
                for k in cols:
                    if k not in served[w]:
                        cells.append("")
                    elif k == base:
                        val = median(w, c, k, key)
                        cells.append(fmt_num(val) if key == "rps" else f"{val:.2f} s" if val else "–")
                    else:
                        cells.append(fmt_ratio(ratios(w, c, k, base, key, invert)))
                add(f"| {titles[w]} | {c} | {LABELS[base]} | " + " | ".join(cells) + " |")

    def grpc_base(w):
        return "tonic" if "tonic" in served[w] else "connectrpc"

    ratio_table("Requests per second, as ratios to tonic (gRPC) or connectrpc (Connect)", "rps", False, grpc_base)
    ratio_table(
        "Server CPU-seconds per 100k requests, as ratios to the same baseline (lower is better)",
        "cpu_per_100k",
        False,
        grpc_base,
    )
    ingest = [w for w in names if w.startswith("ingest")]
    if ingest and "connectrpc" in args.contenders:
        add("")
        add("## Ingest against connectrpc")
        add("")
        add("| workload | c | connectrpc req/s | Volley req/s | Volley views req/s | Volley CPU | Volley views CPU |")
        add("|---|--:|--:|--:|--:|--:|--:|")
        for w in ingest:
            for c in args.concurrency:
                add(
                    f"| {titles[w]} | {c} | {fmt_num(median(w, c, 'connectrpc', 'rps'))} | "
                    f"{fmt_ratio(ratios(w, c, 'volley', 'connectrpc', 'rps'))} | "
                    f"{fmt_ratio(ratios(w, c, 'volley-view', 'connectrpc', 'rps'))} | "
                    f"{fmt_ratio(ratios(w, c, 'volley', 'connectrpc', 'cpu_per_100k'))} | "
                    f"{fmt_ratio(ratios(w, c, 'volley-view', 'connectrpc', 'cpu_per_100k'))} |"
                )
    add("")
    add("## Absolute numbers (median over rounds; min–max)")
    add("")
    add("| workload | c | contender | req/s | server CPU-s / 100k req | peak RSS MiB |")
    add("|---|--:|---|--:|--:|--:|")
    for w in names:
        for c in args.concurrency:
            for k in served[w]:
                rps = list(per_round(w, c, k, "rps").values())
                cpu = list(per_round(w, c, k, "cpu_per_100k").values())
                rss = list(per_round(w, c, k, "rss_mib").values())
                if not rps:
                    add(f"| {titles[w]} | {c} | {LABELS[k]} | failed | | |")
                    continue
                add(
                    f"| {titles[w]} | {c} | {LABELS[k]} | {fmt_num(statistics.median(rps))} "
                    f"({fmt_num(min(rps))}–{fmt_num(max(rps))}) | {statistics.median(cpu):.2f} "
                    f"({min(cpu):.2f}–{max(cpu):.2f}) | {statistics.median(rss):.1f} ({max(rss):.1f} max) |"
                )
    add("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {args.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, c=64, 2 s runs: a smoke test")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--concurrency", default="16,64,256")
    p.add_argument("--workloads", default="")
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--out", default=os.path.join(ROOT, "benches", "RESULTS.md"))
    p.add_argument(
        "--report-only",
        metavar="JSON",
        help="rewrite the results file from a results.json of an earlier run, measuring nothing",
    )
    args = p.parse_args()
    if args.quick:
        args.rounds, args.duration, args.concurrency = 1, 2, "64"
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.contenders = [c for c in args.contenders.split(",") if c]
    for c in args.contenders:
        if c not in CONTENDERS:
            sys.exit(f"unknown contender {c}; known: {', '.join(CONTENDERS)}")
    # h2load's -D takes whole seconds.
    args.duration, args.warmup = max(1, round(args.duration)), max(1, round(args.warmup))

    if args.report_only:
        with open(args.report_only) as f:
            saved = json.load(f)
        for key, value in saved["meta"].get("args", {}).items():
            setattr(args, key, value)
        write_results(args, saved["workloads"], saved["runs"], saved["meta"])
        return
    ensure_h2load()
    if not args.no_build:
        build()
    tool = binary("bench-tool")
    body_dir = os.path.join(target_dir(), "bench")
    os.makedirs(body_dir, exist_ok=True)
    workloads = json.loads(run_out([tool, "workloads", body_dir]))
    if args.workloads:
        wanted = args.workloads.split(",")
        workloads = [w for w in workloads if w["name"] in wanted]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "command": "scripts/bench.sh " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "versions": versions(),
        "load_start": loadavg(),
        "args": {
            k: getattr(args, k) for k in ("rounds", "duration", "warmup", "concurrency", "contenders")
        },
    }
    plan = []
    for rnd in range(1, args.rounds + 1):
        for w in workloads:
            for c in args.concurrency:
                who = [k for k in args.contenders if CONTENDERS[k][1](w)]
                shift = (rnd - 1) % len(who)
                for k in who[shift:] + who[:shift]:
                    plan.append((rnd, w, c, k))
    per_run = args.duration + args.warmup + 0.7
    log(f"{len(plan)} runs, about {len(plan) * per_run / 60:.0f} min")
    runs = []
    for i, (rnd, w, c, k) in enumerate(plan, 1):
        try:
            rec = one_run(args, tool, w, c, k, rnd)
        except RuntimeError as err:
            rec = {"round": rnd, "workload": w["name"], "c": c, "contender": k, "ok": False, "error": str(err)}
        runs.append(rec)
        if rec["ok"]:
            flag = " DISTURBED" if rec["disturbed"] else ""
            log(
                f"[{i}/{len(plan)}] r{rnd} {w['name']:<15} c={c:<3} {k:<12} {rec['rps']:>10.0f} req/s "
                f"{rec['cpu_per_100k']:6.2f} CPU-s/100k {rec['rss_mib']:5.1f} MiB "
                f"other {rec['foreign']:.0%}{flag}"
            )
        else:
            log(f"[{i}/{len(plan)}] r{rnd} {w['name']:<15} c={c:<3} {k:<12} FAILED: {rec['error'][:300]}")
    meta["load_end"] = loadavg()
    with open(os.path.join(body_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "workloads": workloads, "runs": runs}, f, indent=1)
    write_results(args, workloads, runs, meta)
    if any(not r["ok"] for r in runs):
        sys.exit("some runs failed (see above)")


if __name__ == "__main__":
    main()
