"""Shared bits of the grpcio peers: import paths for the generated stubs, code tables."""

import os
import sys

INTEROP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEN_PY = os.path.join(INTEROP, "gen", "py")
if not os.path.isdir(os.path.join(GEN_PY, "volley")):
    sys.exit(f"generated stubs missing in {GEN_PY}: run scripts/install-peers.sh")
sys.path.insert(0, GEN_PY)

import grpc  # noqa: E402

from volley.interop.v1 import interop_pb2, interop_pb2_grpc  # noqa: E402,F401

# Connect / gRPC code number -> grpc.StatusCode (the numbers are the same in both).
CODES = {sc.value[0]: sc for sc in grpc.StatusCode}

COMPRESSIONS = {
    "identity": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


def target_of(url: str) -> str:
    """`http://host:port` or `host:port` -> `host:port`."""
    for prefix in ("http://", "h2c://"):
        if url.startswith(prefix):
            url = url[len(prefix):]
    return url.rstrip("/")
