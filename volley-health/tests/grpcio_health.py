"""Checks a Volley health service with grpcio's own health client.

Usage: grpcio_health.py HOST:PORT

The Rust test that runs this script prepares the server: the whole server ("")
is SERVING, "interop.Up" is SERVING, "interop.Down" is NOT_SERVING, and
"interop.Later" becomes SERVING about half a second after the script prints
WATCHING. Prints OK on success; any failed check raises.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

Status = health_pb2.HealthCheckResponse


def main() -> None:
    target = sys.argv[1]
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def check(service: str) -> int:
            req = health_pb2.HealthCheckRequest(service=service)
            return stub.Check(req, timeout=5).status

        assert check("") == Status.SERVING
        assert check("interop.Up") == Status.SERVING
        assert check("interop.Down") == Status.NOT_SERVING
        try:
            check("interop.Nope")
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, err.code()
        else:
            raise AssertionError("Check on an unknown service succeeded")

        listed = stub.List(health_pb2.HealthListRequest(), timeout=5).statuses
        got = {name: resp.status for name, resp in listed.items()}
        want = {
            "": Status.SERVING,
            "interop.Up": Status.SERVING,
            "interop.Down": Status.NOT_SERVING,
        }
        assert got == want, got

        watch = stub.Watch(
            health_pb2.HealthCheckRequest(service="interop.Later"), timeout=10
        )
        first = next(watch)
        assert first.status == Status.SERVICE_UNKNOWN, first
        print("WATCHING", flush=True)
        second = next(watch)
        assert second.status == Status.SERVING, second
        watch.cancel()
    print("OK", flush=True)


if __name__ == "__main__":
    main()
