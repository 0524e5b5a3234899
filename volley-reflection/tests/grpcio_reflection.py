"""Resolves a Volley server's schema with grpcio's reflection descriptor database.

Usage: grpcio_reflection.py HOST:PORT

grpcio's client speaks grpc.reflection.v1alpha. The server serves the protos in
tests/protos and grpc.health.v1. Prints OK on success; a failed check raises.
"""

import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main() -> None:
    with grpc.insecure_channel(sys.argv[1]) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        assert services == [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "reflect.test.v1.Sample",
        ], services

        pool = DescriptorPool(db)
        sample = pool.FindServiceByName("reflect.test.v1.Sample")
        assert [m.name for m in sample.methods] == ["Get", "Ping"]
        get = sample.methods_by_name["Get"]
        assert get.output_type.full_name == "reflect.test.v1.Base"
        assert get.input_type.oneofs_by_name["how"].fields[0].name == "fast"
        ping = sample.methods_by_name["Ping"]
        assert ping.input_type.full_name == "google.protobuf.Empty"

        nested = pool.FindMessageTypeByName("reflect.test.v1.Base.Nested")
        assert nested.enum_types_by_name["Shade"].values_by_number[1].name == "SHADE_DARK"

        assert sorted(db.FindAllExtensionNumbers("reflect.test.v1.Base")) == [100, 101]
        try:
            db.FindAllExtensionNumbers("reflect.test.v1.Nope")
        except KeyError:
            pass
        else:
            raise AssertionError("extension numbers of an unknown type")
        # grpcio's database never asks for file_containing_extension (its base class
        # answers None first), so load the extensions' file by name and look them up.
        ext_file = pool.FindFileByName("reflect/test/v1/ext.proto")
        assert sorted(ext_file.extensions_by_name) == ["priority"]
        base = pool.FindMessageTypeByName("reflect.test.v1.Base")
        priority = pool.FindExtensionByNumber(base, 100)
        assert priority.full_name == "reflect.test.v1.priority", priority.full_name
        holder = pool.FindExtensionByNumber(base, 101)
        assert holder.full_name == "reflect.test.v1.Holder.holder", holder.full_name

        health = pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")
        assert health.fields_by_name["status"].number == 1

        try:
            pool.FindMessageTypeByName("reflect.test.v1.Nope")
        except KeyError:
            pass
        else:
            raise AssertionError("an unknown symbol resolved")
    print("OK", flush=True)


if __name__ == "__main__":
    main()
