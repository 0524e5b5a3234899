"""grpcio's health client against a server: Check known and unknown services, Watch.

Usage: health_check.py PORT SERVICE
"""
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
port = sys.argv[1]
known = sys.argv[2]
ch = grpc.insecure_channel(f"127.0.0.1:{port}")
stub = health_pb2_grpc.HealthStub(ch)
ok = fail = 0
def case(name, cond, why=""):
    global ok, fail
    if cond: ok += 1; print(f"PASS {name}")
    else: fail += 1; print(f"FAIL {name}: {why}")
r = stub.Check(health_pb2.HealthCheckRequest(service=known), timeout=5)
case("check eliza", r.status == health_pb2.HealthCheckResponse.SERVING, str(r))
try:
    stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    case("check unknown", False, "no error")
except grpc.RpcError as e:
    case("check unknown", e.code() == grpc.StatusCode.NOT_FOUND, str(e.code()))
w = stub.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
first = next(w)
case("watch unknown", first.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN, str(first))
w.cancel()
print(f"{ok} passed, {fail} failed")
sys.exit(1 if fail else 0)
