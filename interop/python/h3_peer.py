"""HTTP/3 peer built on aioquic (an independent QUIC + HTTP/3 stack), for Volley's interop.

  h3_peer.py client --port N --ca CERT_PEM
      Calls Volley's interop-server over HTTP/3: Connect unary (Echo, proto and JSON) and
      Connect server streaming (ServerStream), checking the bytes on the wire: status,
      content types, the 5-byte envelopes and the end-of-stream message. Prints PASS/FAIL
      lines and `N passed, N failed, 0 skipped`; exits 1 if a case failed.

  h3_peer.py server --cert-out CERT_PEM
      Serves a minimal Connect implementation of InteropService.Echo (unary) and
      InteropService.ServerStream over HTTP/3 on 127.0.0.1 with a fresh self-signed
      certificate (written to CERT_PEM); prints `LISTENING <port>`, serves until killed.

The messages come from the stubs scripts/install-peers.sh generates (interop/gen/py).
"""

import argparse
import asyncio
import datetime
import json
import os
import socket
import struct
import sys

INTEROP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN_PY = os.path.join(INTEROP, "gen", "py")
if not os.path.isdir(os.path.join(GEN_PY, "volley")):
    sys.exit(f"generated stubs missing in {GEN_PY}: run scripts/install-peers.sh")
sys.path.insert(0, GEN_PY)

try:
    from aioquic.asyncio import serve
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
except ImportError as e:  # fail loudly: the HTTP/3 interop must not be skipped silently
    sys.exit(f"aioquic is missing ({e}): run scripts/install-peers.sh")

from volley.interop.v1 import interop_pb2  # noqa: E402

SERVICE = "/volley.interop.v1.InteropService"


def envelope(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def split_envelopes(body: bytes):
    """[(flags, payload)], or raises ValueError on a malformed body."""
    out = []
    i = 0
    while i < len(body):
        if len(body) - i < 5:
            raise ValueError(f"{len(body) - i} stray bytes after the last envelope")
        flags, n = struct.unpack(">BI", body[i:i + 5])
        if len(body) - i - 5 < n:
            raise ValueError(f"envelope declares {n} bytes, {len(body) - i - 5} follow")
        out.append((flags, body[i + 5:i + 5 + n]))
        i += 5 + n
    return out


# --- client ---------------------------------------------------------------------------


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.pending = {}

    def quic_event_received(self, event):
        for ev in self.http.handle_event(event):
            state = self.pending.get(getattr(ev, "stream_id", None))
            if state is None:
                continue
            if isinstance(ev, HeadersReceived):
                if state["headers"] is None:
                    state["headers"] = ev.headers
                else:
                    state["trailers"] = ev.headers
            elif isinstance(ev, DataReceived):
                state["body"] += ev.data
            if getattr(ev, "stream_ended", False) and not state["done"].done():
                state["done"].set_result(None)

    async def call(self, path: str, headers, body: bytes):
        sid = self._quic.get_next_available_stream_id()
        state = {
            "headers": None,
            "trailers": [],
            "body": b"",
            "done": asyncio.get_running_loop().create_future(),
        }
        self.pending[sid] = state
        self.http.send_headers(
            sid,
            [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
            ]
            + [(k.encode(), v.encode()) for k, v in headers],
            end_stream=False,
        )
        self.http.send_data(sid, body, end_stream=True)
        self.transmit()
        await asyncio.wait_for(state["done"], 10)
        head = {k.decode(): v.decode() for k, v in state["headers"]}
        return head, state["body"], {k.decode(): v.decode() for k, v in state["trailers"]}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def case_unary_proto(client):
    req = interop_pb2.EchoRequest(text="over quic", payload=bytes(range(256)) * 4)
    head, body, _ = await client.call(
        f"{SERVICE}/Echo",
        [("content-type", "application/proto"), ("x-test-echo", "e1"),
         ("connect-protocol-version", "1")],
        req.SerializeToString(),
    )
    check(head.get(":status") == "200", f"status {head.get(':status')}")
    check(head.get("content-type") == "application/proto", f"content-type {head}")
    check(head.get("x-test-echo-header") == "e1", f"echo header: {head}")
    check(head.get("trailer-x-test-echo-trailer") == "e1", f"echo trailer: {head}")
    res = interop_pb2.EchoResponse.FromString(body)
    check(res.text == "over quic", f"text {res.text!r}")
    check(res.payload == req.payload, "payload differs")
    check(res.received == 1 and res.index == 0, f"received {res.received} index {res.index}")
    check(res.headers.get("x-test-echo") == "e1", f"headers seen {dict(res.headers)}")


async def case_unary_json(client):
    head, body, _ = await client.call(
        f"{SERVICE}/Echo",
        [("content-type", "application/json")],
        json.dumps({"text": "json over quic"}).encode(),
    )
    check(head.get(":status") == "200", f"status {head.get(':status')}")
    check(head.get("content-type") == "application/json", f"content-type {head}")
    check(json.loads(body).get("text") == "json over quic", f"body {body!r}")


async def case_unary_error(client):
    req = interop_pb2.EchoRequest(text="x")
    req.error.code = 5  # not_found
    req.error.message = "no such thing"
    head, body, _ = await client.call(
        f"{SERVICE}/Echo", [("content-type", "application/proto")], req.SerializeToString()
    )
    check(head.get(":status") == "404", f"status {head.get(':status')}")
    err = json.loads(body)
    check(err.get("code") == "not_found", f"error {err}")
    check(err.get("message") == "no such thing", f"error {err}")


async def case_server_stream(client):
    req = interop_pb2.EchoRequest(text="s", count=5)
    head, body, _ = await client.call(
        f"{SERVICE}/ServerStream",
        [("content-type", "application/connect+proto"), ("x-test-echo", "t")],
        envelope(0, req.SerializeToString()),
    )
    check(head.get(":status") == "200", f"status {head.get(':status')}")
    check(head.get("content-type") == "application/connect+proto", f"content-type {head}")
    frames = split_envelopes(body)
    check(len(frames) == 6, f"{len(frames)} envelopes, want 5 messages + end")
    for i, (flags, payload) in enumerate(frames[:5]):
        check(flags == 0, f"message {i} flags {flags}")
        res = interop_pb2.EchoResponse.FromString(payload)
        check(res.index == i and res.text == "s", f"message {i}: {res}")
    flags, payload = frames[5]
    check(flags == 2, f"end-of-stream flags {flags}")
    end = json.loads(payload)
    check("error" not in end, f"end {end}")
    check(end.get("metadata", {}).get("x-test-echo-trailer") == ["t"], f"end {end}")


async def case_server_stream_error(client):
    req = interop_pb2.EchoRequest(text="s", count=3, fail_after=2)
    req.error.code = 8  # resource_exhausted
    req.error.message = "enough"
    _, body, _ = await client.call(
        f"{SERVICE}/ServerStream",
        [("content-type", "application/connect+proto")],
        envelope(0, req.SerializeToString()),
    )
    frames = split_envelopes(body)
    check([f for f, _ in frames] == [0, 0, 2], f"flags {[f for f, _ in frames]}")
    end = json.loads(frames[-1][1])
    check(end.get("error", {}).get("code") == "resource_exhausted", f"end {end}")


async def run_client(args) -> int:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(args.ca)
    config.server_name = "localhost"
    cases = [case_unary_proto, case_unary_json, case_unary_error, case_server_stream,
             case_server_stream_error]
    passed = failed = 0
    print(f"# aioquic client -> 127.0.0.1:{args.port} over HTTP/3")
    async with connect("127.0.0.1", args.port, configuration=config,
                       create_protocol=Client) as client:
        for case in cases:
            name = case.__name__[len("case_"):]
            try:
                await case(client)
                print(f"PASS {name}")
                passed += 1
            except Exception as e:  # noqa: BLE001 - every failure is a case failure
                print(f"FAIL {name}: {type(e).__name__}: {e}")
                failed += 1
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


# --- server ---------------------------------------------------------------------------


def connect_error(code: str, message: str, status: int):
    return status, "application/json", json.dumps({"code": code, "message": message}).encode()


class Server(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.requests = {}

    def quic_event_received(self, event):
        for ev in self.http.handle_event(event):
            if isinstance(ev, HeadersReceived):
                if ev.stream_id not in self.requests:
                    self.requests[ev.stream_id] = {
                        "headers": {k.decode(): v.decode() for k, v in ev.headers},
                        "body": b"",
                    }
            elif isinstance(ev, DataReceived) and ev.stream_id in self.requests:
                self.requests[ev.stream_id]["body"] += ev.data
            if getattr(ev, "stream_ended", False) and ev.stream_id in self.requests:
                req = self.requests.pop(ev.stream_id)
                asyncio.ensure_future(self.answer(ev.stream_id, req))

    def send(self, sid, status, headers, body, end=True):
        self.http.send_headers(
            sid,
            [(b":status", str(status).encode())]
            + [(k.encode(), v.encode()) for k, v in headers],
        )
        self.http.send_data(sid, body, end_stream=end)
        self.transmit()

    async def answer(self, sid, req):
        h = req["headers"]
        path = h.get(":path", "")
        ct = h.get("content-type", "")
        tests = {k: v for k, v in h.items() if k.startswith("x-test-")}
        echo = []
        if "x-test-echo" in h:
            echo.append(("x-test-echo-header", h["x-test-echo"]))
        if "x-test-bin-bin" in h:
            echo.append(("x-test-bin-bin", h["x-test-bin-bin"]))
        timeout = h.get("connect-timeout-ms")
        deadline = int(timeout) if timeout else -1
        if path == f"{SERVICE}/Echo" and ct == "application/proto":
            msg = interop_pb2.EchoRequest.FromString(req["body"])
            res = interop_pb2.EchoResponse(
                text=msg.text, payload=msg.payload or b"x" * msg.response_size, index=0,
                received=1, deadline_ms=deadline, headers=tests,
            )
            trailers = [("trailer-x-test-echo-trailer", h["x-test-echo"])] if "x-test-echo" in h else []
            self.send(sid, 200, [("content-type", "application/proto")] + echo + trailers,
                      res.SerializeToString())
        elif path == f"{SERVICE}/ServerStream" and ct == "application/connect+proto":
            try:
                frames = split_envelopes(req["body"])
            except ValueError as e:
                end = {"error": {"code": "invalid_argument", "message": str(e)}}
                self.send(sid, 200, [("content-type", ct)], envelope(2, json.dumps(end).encode()))
                return
            msg = interop_pb2.EchoRequest.FromString(frames[0][1])
            self.http.send_headers(
                sid, [(b":status", b"200"), (b"content-type", ct.encode())]
                + [(k.encode(), v.encode()) for k, v in echo],
            )
            for i in range(msg.count):
                res = interop_pb2.EchoResponse(text=msg.text, index=i, received=1,
                                               deadline_ms=deadline, headers=tests)
                self.http.send_data(sid, envelope(0, res.SerializeToString()), end_stream=False)
                self.transmit()
                await asyncio.sleep(0.01)
            end = {"metadata": {"x-test-echo-trailer": [h["x-test-echo"]]}} if "x-test-echo" in h else {}
            self.http.send_data(sid, envelope(2, json.dumps(end).encode()), end_stream=True)
            self.transmit()
        else:
            status, rct, body = connect_error("unimplemented", f"{path} ({ct})", 404)
            self.send(sid, status, [("content-type", rct)], body)


def self_signed(cert_out: str, key_out: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    with open(cert_out, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_out, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


async def run_server(args) -> int:
    key_out = args.cert_out + ".key"
    self_signed(args.cert_out, key_out)
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(args.cert_out, key_out)
    # A free UDP port: bind one, read it, release it for aioquic.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    await serve("127.0.0.1", port, configuration=config, create_protocol=Server)
    print(f"LISTENING {port}", flush=True)
    await asyncio.Event().wait()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--ca", required=True)
    s = sub.add_parser("server")
    s.add_argument("--cert-out", required=True)
    args = parser.parse_args()
    if args.mode == "client":
        return asyncio.run(run_client(args))
    return asyncio.run(run_server(args))


if __name__ == "__main__":
    sys.exit(main())
