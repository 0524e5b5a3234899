#!/usr/bin/env python3
"""grpcio (C-core) server for volley.interop.v1.InteropService over h2c.

    interop/.venv/bin/python interop/python/server.py [--port N] [--host 127.0.0.1]
        [--compression identity|gzip|deflate] [--verbose]

Prints `LISTENING <port>` once it serves (--port 0 = ephemeral). Also serves
grpc.health.v1.Health (overall status and the InteropService name: SERVING) and server
reflection. --compression sets the server's default response compression (grpcio reads
compressed requests in gzip and deflate whatever it is).
"""

import argparse
import base64
import signal
import sys
import threading
from concurrent import futures

from common import CODES, COMPRESSIONS, grpc, interop_pb2, interop_pb2_grpc
from google.rpc import status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

SERVICE = "volley.interop.v1.InteropService"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def test_headers(context) -> dict:
    """Request metadata named x-test-*, repeated values joined with ","; -bin values as
    unpadded standard base64 of their bytes."""
    out = {}
    for key, value in context.invocation_metadata():
        if not key.startswith("x-test-"):
            continue
        if isinstance(value, bytes):
            value = _b64(value)
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def metadata_value(context, name):
    for key, value in context.invocation_metadata():
        if key == name:
            return value
    return None


class Call:
    """Per-RPC helpers: metadata echo, deadline, sleeping that stops when the RPC ends."""

    def __init__(self, context):
        self.context = context
        self.done = threading.Event()
        context.add_callback(self.done.set)
        self.echo = metadata_value(context, "x-test-echo")
        self.trailers = [("x-test-echo-trailer", self.echo)] if self.echo is not None else []
        if self.trailers:
            context.set_trailing_metadata(self.trailers)

    def send_headers(self):
        md = []
        if self.echo is not None:
            md.append(("x-test-echo-header", self.echo))
        binv = metadata_value(self.context, "x-test-bin-bin")
        if binv is not None:
            md.append(("x-test-bin-bin", binv))
        self.context.send_initial_metadata(md)

    def deadline_ms(self) -> int:
        left = self.context.time_remaining()
        if left is None or left > 10 * 365 * 86400:  # grpcio reports "no deadline" as huge
            return -1
        return max(0, int(left * 1000))

    def sleep(self, ms: int):
        """Returns False if the RPC ended (deadline, cancel) while sleeping."""
        if ms > 0 and self.done.wait(ms / 1000):
            return False
        return self.context.is_active()

    def fail(self, spec):
        """Ends the RPC with the ErrorSpec's code, message and details (as given)."""
        code = CODES.get(spec.code, grpc.StatusCode.UNKNOWN)
        status = status_pb2.Status(code=code.value[0], message=spec.message)
        status.details.extend(spec.details)
        md = list(self.trailers)
        if len(spec.details) > 0:
            md.append(("grpc-status-details-bin", status.SerializeToString()))
        self.context.set_trailing_metadata(md)
        self.context.abort(code, spec.message)

    def response(self, req, **fields):
        payload = b"x" * req.response_size if req.response_size > 0 else req.payload
        res = interop_pb2.EchoResponse(
            text=req.text,
            payload=payload,
            headers=test_headers(self.context),
            deadline_ms=self.deadline_ms(),
            index=0,
            received=1,
        )
        for k, v in fields.items():
            setattr(res, k, v)
        return res


def has_error(req) -> bool:
    return req.HasField("error") and req.error.code != 0


class InteropService(interop_pb2_grpc.InteropServiceServicer):
    def Echo(self, request, context):
        call = Call(context)
        call.send_headers()
        if not call.sleep(request.delay_ms):
            return interop_pb2.EchoResponse()
        if has_error(request):
            call.fail(request.error)
        return call.response(request)

    def ServerStream(self, request, context):
        call = Call(context)
        call.send_headers()
        failing = has_error(request)
        for i in range(request.count):
            if failing and i == request.fail_after:
                call.fail(request.error)
            if not call.sleep(request.delay_ms):
                return
            yield call.response(request, index=i)
        if failing:
            call.fail(request.error)

    def ClientStream(self, request_iterator, context):
        call = Call(context)
        call.send_headers()
        texts, payloads, first_error = [], [], None
        for req in request_iterator:
            if not call.sleep(req.delay_ms):
                return interop_pb2.EchoResponse()
            texts.append(req.text)
            payloads.append(req.payload)
            if first_error is None and has_error(req):
                first_error = req.error
        if first_error is not None:
            call.fail(first_error)
        return interop_pb2.EchoResponse(
            text=" ".join(texts),
            payload=b"".join(payloads),
            headers=test_headers(context),
            deadline_ms=call.deadline_ms(),
            index=0,
            received=len(texts),
        )

    def Bidi(self, request_iterator, context):
        call = Call(context)
        call.send_headers()
        for i, req in enumerate(request_iterator):
            if has_error(req):
                call.fail(req.error)
            if not call.sleep(req.delay_ms):
                return
            yield call.response(req, index=i, received=i + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--compression", choices=sorted(COMPRESSIONS), default="identity")
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        compression=COMPRESSIONS[args.compression],
        options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.so_reuseport", 0),
        ],
    )
    interop_pb2_grpc.add_InteropServiceServicer_to_server(InteropService(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        interop_pb2.DESCRIPTOR.services_by_name["InteropService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)

    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        sys.exit(f"server.py: cannot bind {args.host}:{args.port}")
    server.start()
    print(f"LISTENING {port}", flush=True)
    if args.verbose:
        print(f"grpcio {grpc.__version__} serving h2c on {args.host}:{port}", file=sys.stderr, flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(1)
    server.stop(grace=0.5).wait()


if __name__ == "__main__":
    main()
