#!/usr/bin/env python3
"""grpcio (C-core) client: runs a suite of cases against an InteropService server (h2c).

    interop/.venv/bin/python interop/python/client.py --url http://127.0.0.1:PORT
        [--compression identity|gzip|deflate] [--cases a,b] [--skip a,b]
        [--case-timeout SECONDS] [--list]

Prints `PASS name`, `FAIL name: reason` or `SKIP name: reason` per case, then
`N passed, N failed` (and skipped); exits 1 if any case failed, 2 on bad arguments.
"""

import argparse
import os
import queue
import sys
import threading
import time
import traceback

from common import CODES, COMPRESSIONS, grpc, interop_pb2, interop_pb2_grpc, target_of
from google.protobuf import any_pb2
from grpc_status import rpc_status


class CheckError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckError(msg)


def eq(actual, expected, what):
    check(actual == expected, f"{what}: got {actual!r}, want {expected!r}")


def md_get(md, name):
    for key, value in md or ():
        if key == name:
            return value
    return None


def code_name(code: int) -> str:
    sc = CODES.get(code)
    return sc.name if sc else str(code)


def expect_error(fn, code: int, what):
    try:
        fn()
    except grpc.RpcError as err:
        got = err.code().value[0]
        check(got == code, f"{what}: got {code_name(got)} ({err.details()}), want {code_name(code)}")
        return err
    raise CheckError(f"{what}: succeeded, want {code_name(code)}")


def noise(n: int, seed: int = 0x9E3779B9) -> bytes:
    """Deterministic, poorly compressible bytes (same xorshift as the node client)."""
    out = bytearray(n)
    x = seed
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
    return bytes(out)


ECHO = "echo-value"
BIN = bytes([0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF])
# Non-ASCII and characters gRPC must percent-encode in grpc-message.
ERROR_MESSAGE = 'failed: 100% ünïcödé\r\n{"quoted"}'
FAILED_PRECONDITION, RESOURCE_EXHAUSTED, INVALID_ARGUMENT, ABORTED, DEADLINE_EXCEEDED = 9, 8, 3, 10, 4


def error_info():
    return interop_pb2.ErrorInfo(reason="TEST_REASON", domain="volley.test")


def packed(msg):
    a = any_pb2.Any()
    a.Pack(msg)
    return a


class Suite:
    def __init__(self, stub):
        self.stub = stub

    def unary_echo(self):
        payload = noise(100)
        res, call = self.stub.Echo.with_call(
            interop_pb2.EchoRequest(text="hello", payload=payload),
            metadata=[("x-test-echo", ECHO), ("x-test-bin-bin", BIN), ("x-test-plain", "plain-value")],
        )
        eq(res.text, "hello", "text")
        eq(res.payload, payload, "payload")
        eq(res.index, 0, "index")
        eq(res.received, 1, "received")
        eq(res.deadline_ms, -1, "deadline_ms without a timeout")
        eq(res.headers.get("x-test-echo"), ECHO, "headers[x-test-echo]")
        eq(res.headers.get("x-test-plain"), "plain-value", "headers[x-test-plain]")
        check("x-test-bin-bin" in res.headers, "headers[x-test-bin-bin] missing")
        eq(md_get(call.initial_metadata(), "x-test-echo-header"), ECHO, "response header x-test-echo-header")
        eq(md_get(call.trailing_metadata(), "x-test-echo-trailer"), ECHO, "response trailer x-test-echo-trailer")
        eq(md_get(call.initial_metadata(), "x-test-bin-bin"), BIN, "x-test-bin-bin round trip")

    def unary_response_size(self):
        res = self.stub.Echo(interop_pb2.EchoRequest(text="sized", response_size=5000))
        eq(res.payload, b"x" * 5000, "payload of response_size 5000")

    def unary_repeated_header(self):
        res = self.stub.Echo(
            interop_pb2.EchoRequest(text="multi"), metadata=[("x-test-multi", "a"), ("x-test-multi", "b")]
        )
        eq(res.headers.get("x-test-multi"), "a,b", "headers[x-test-multi]")

    def unary_deadline_propagated(self):
        res = self.stub.Echo(interop_pb2.EchoRequest(text="deadline"), timeout=5)
        # Clients may round the timeout up on the wire (grpcio sends a bit more than 5 s).
        check(0 < res.deadline_ms <= 5100, f"deadline_ms {res.deadline_ms} not in (0, 5100]")

    def unary_error(self):
        req = interop_pb2.EchoRequest(
            text="err",
            error=interop_pb2.ErrorSpec(code=FAILED_PRECONDITION, message=ERROR_MESSAGE, details=[packed(error_info())]),
        )
        err = expect_error(
            lambda: self.stub.Echo(req, metadata=[("x-test-echo", "on-error")]), FAILED_PRECONDITION, "error"
        )
        eq(err.details(), ERROR_MESSAGE, "error message")
        status = rpc_status.from_call(err)
        check(status is not None, "no grpc-status-details-bin")
        eq(status.code, FAILED_PRECONDITION, "google.rpc.Status code")
        eq(status.message, ERROR_MESSAGE, "google.rpc.Status message")
        eq(len(status.details), 1, "details")
        info = interop_pb2.ErrorInfo()
        check(status.details[0].Unpack(info), f"detail is {status.details[0].type_url}, want ErrorInfo")
        eq(info, error_info(), "ErrorInfo")
        eq(md_get(err.initial_metadata(), "x-test-echo-header"), "on-error", "error header x-test-echo-header")
        eq(md_get(err.trailing_metadata(), "x-test-echo-trailer"), "on-error", "error trailer x-test-echo-trailer")

    def unary_error_codes(self):
        for code in range(1, 17):
            req = interop_pb2.EchoRequest(error=interop_pb2.ErrorSpec(code=code, message=f"code {code}"))
            expect_error(lambda: self.stub.Echo(req), code, f"code {code_name(code)}")

    def unary_deadline_exceeded(self):
        started = time.monotonic()
        expect_error(
            lambda: self.stub.Echo(interop_pb2.EchoRequest(text="slow", delay_ms=3000), timeout=0.2),
            DEADLINE_EXCEEDED,
            "slow call",
        )
        took = time.monotonic() - started
        check(took < 2.5, f"took {took:.2f} s, deadline 0.2 s")

    def server_stream(self):
        call = self.stub.ServerStream(interop_pb2.EchoRequest(text="stream", count=3), metadata=[("x-test-echo", "s")])
        got = list(call)
        eq(len(got), 3, "messages")
        eq([r.index for r in got], [0, 1, 2], "indices")
        eq([r.text for r in got], ["stream"] * 3, "texts")
        eq(md_get(call.initial_metadata(), "x-test-echo-header"), "s", "response header x-test-echo-header")
        eq(md_get(call.trailing_metadata(), "x-test-echo-trailer"), "s", "response trailer x-test-echo-trailer")

    def server_stream_error(self):
        got = []
        req = interop_pb2.EchoRequest(
            text="partial",
            count=5,
            fail_after=2,
            error=interop_pb2.ErrorSpec(code=RESOURCE_EXHAUSTED, message="stop here", details=[packed(error_info())]),
        )
        err = expect_error(lambda: got.extend(self.stub.ServerStream(req)), RESOURCE_EXHAUSTED, "stream error")
        eq(len(got), 2, "messages before the error")
        eq(err.details(), "stop here", "error message")
        status = rpc_status.from_call(err)
        check(status is not None and len(status.details) == 1, "ErrorInfo detail missing")

    def client_stream(self):
        reqs = [
            interop_pb2.EchoRequest(text="a", payload=b"\x01\x02"),
            interop_pb2.EchoRequest(text="b", payload=b"\x03"),
            interop_pb2.EchoRequest(text="c", payload=b"\x04\x05\x06"),
        ]
        res, call = self.stub.ClientStream.with_call(iter(reqs), metadata=[("x-test-echo", "c")])
        eq(res.text, "a b c", "text")
        eq(res.received, 3, "received")
        eq(res.payload, b"\x01\x02\x03\x04\x05\x06", "payload")
        eq(md_get(call.initial_metadata(), "x-test-echo-header"), "c", "response header x-test-echo-header")
        eq(md_get(call.trailing_metadata(), "x-test-echo-trailer"), "c", "response trailer x-test-echo-trailer")

    def client_stream_error(self):
        reqs = [
            interop_pb2.EchoRequest(text="a"),
            interop_pb2.EchoRequest(text="b", error=interop_pb2.ErrorSpec(code=INVALID_ARGUMENT, message="bad b")),
            interop_pb2.EchoRequest(text="c"),
        ]
        err = expect_error(lambda: self.stub.ClientStream(iter(reqs)), INVALID_ARGUMENT, "client stream")
        eq(err.details(), "bad b", "error message")

    def bidi(self):
        # Ping-pong: the next request goes out only after the previous response arrived.
        q = queue.Queue()
        call = self.stub.Bidi(iter(q.get, None), metadata=[("x-test-echo", "b")])
        for i in range(3):
            q.put(interop_pb2.EchoRequest(text=f"ping {i}"))
            r = next(call)
            eq((r.text, r.index, r.received), (f"ping {i}", i, i + 1), f"response {i}")
        q.put(None)
        rest = list(call)
        eq(len(rest), 0, "responses after close")
        eq(md_get(call.initial_metadata(), "x-test-echo-header"), "b", "response header x-test-echo-header")
        eq(md_get(call.trailing_metadata(), "x-test-echo-trailer"), "b", "response trailer x-test-echo-trailer")

    def bidi_half_duplex(self):
        got = list(self.stub.Bidi(iter([interop_pb2.EchoRequest(text=f"m{i}") for i in range(3)])))
        eq([r.text for r in got], ["m0", "m1", "m2"], "texts")
        eq([r.received for r in got], [1, 2, 3], "received")

    def bidi_error(self):
        reqs = [
            interop_pb2.EchoRequest(text="ok"),
            interop_pb2.EchoRequest(text="boom", error=interop_pb2.ErrorSpec(code=ABORTED, message="bidi failed")),
        ]
        got = []
        err = expect_error(lambda: got.extend(self.stub.Bidi(iter(reqs))), ABORTED, "bidi")
        eq(len(got), 1, "responses before the error")
        eq(err.details(), "bidi failed", "error message")

    def large_payload(self):
        payload = noise(1 << 19) + b"a" * (1 << 19)
        res = self.stub.Echo(interop_pb2.EchoRequest(text="large", payload=payload))
        check(res.payload == payload, f"1 MiB payload differs (got {len(res.payload)} bytes)")

    def large_stream_compressed(self):
        got = list(self.stub.ServerStream(interop_pb2.EchoRequest(text="big", count=2, response_size=300000)))
        eq(len(got), 2, "messages")
        for r in got:
            check(r.payload == b"x" * 300000, "payload differs")


CASES = [
    "unary_echo",
    "unary_response_size",
    "unary_repeated_header",
    "unary_deadline_propagated",
    "unary_error",
    "unary_error_codes",
    "unary_deadline_exceeded",
    "server_stream",
    "server_stream_error",
    "client_stream",
    "client_stream_error",
    "bidi",
    "bidi_half_duplex",
    "bidi_error",
    "large_payload",
    "large_stream_compressed",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="http://host:port (h2c) or host:port")
    ap.add_argument("--compression", choices=sorted(COMPRESSIONS), default="identity")
    ap.add_argument("--cases", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--case-timeout", type=float, default=20.0)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    if not args.url:
        ap.error("--url is required")
    only = [c for c in args.cases.split(",") if c]
    skip = [c for c in args.skip.split(",") if c]
    unknown = [c for c in only + skip if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s): {', '.join(unknown)} (see --list)")

    channel = grpc.insecure_channel(
        target_of(args.url),
        compression=COMPRESSIONS[args.compression],
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
    )
    suite = Suite(interop_pb2_grpc.InteropServiceStub(channel))
    print(f"# grpcio {grpc.__version__} client: {args.url} compression={args.compression}", flush=True)
    passed = failed = skipped = 0
    for name in CASES:
        if only and name not in only:
            continue
        if name in skip:
            print(f"SKIP {name}: --skip", flush=True)
            skipped += 1
            continue
        outcome = {}

        def run(name=name, outcome=outcome):
            try:
                getattr(suite, name)()
                outcome["ok"] = True
            except CheckError as e:
                outcome["err"] = str(e)
            except grpc.RpcError as e:
                outcome["err"] = f"unexpected error: {e.code().name}: {e.details()}"
            except Exception as e:  # a bug in the case or the peer; show where
                outcome["err"] = f"unexpected exception: {e!r} at {traceback.format_tb(e.__traceback__)[-1].strip()}"

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(args.case_timeout)
        if t.is_alive():
            outcome["err"] = f"timed out after {args.case_timeout} s"
        if outcome.get("ok"):
            print(f"PASS {name}", flush=True)
            passed += 1
        else:
            print(f"FAIL {name}: {' '.join(outcome['err'].split())}", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    # Skip grpcio's shutdown (a hung case's thread would block it).
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
