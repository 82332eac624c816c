#!/usr/bin/env python3
"""A tiny CRI client: one gRPC call to a CRI runtime, the way crictl makes it.

    cri_client.py SOCKET GEN_DIR Service/Method 'JSON request'

GEN_DIR holds cri_pb2.py and cri_pb2_grpc.py, compiled from cri.proto (our
subset of kubernetes/cri-api) by `cri_client.py --compile PROTO GEN_DIR`.
The request is the proto3 JSON form of the message (field names as in the
.proto, e.g. {"pod_sandbox_id": "..."}); the response is printed the same
way, with every field shown. A gRPC error prints its status and message on
stderr and exits 1: the caller sees what the kubelet would have logged.
"""

import json
import sys


def compile_proto(proto, out_dir):
    """protoc, from grpc_tools, into out_dir: cri_pb2 and cri_pb2_grpc."""
    import os
    from grpc_tools import protoc

    include = os.path.dirname(os.path.abspath(proto))
    rc = protoc.main(["protoc", "-I" + include, "--python_out=" + out_dir,
                      "--grpc_python_out=" + out_dir, os.path.abspath(proto)])
    if rc != 0:
        sys.exit("protoc failed on %s" % proto)


def call(socket, gen_dir, method, request_json):
    sys.path.insert(0, gen_dir)
    import grpc
    from google.protobuf import json_format
    import cri_pb2
    import cri_pb2_grpc

    service, name = method.split("/")
    stub = getattr(cri_pb2_grpc, service + "Stub")(
        grpc.insecure_channel("unix://" + socket))
    # The request type is the method's input: FooRequest for rpc Foo.
    request = json_format.Parse(request_json or "{}",
                                getattr(cri_pb2, name + "Request")())
    try:
        # Like the kubelet's runtime request timeout (2 minutes by default).
        response = getattr(stub, name)(request, timeout=120)
    except grpc.RpcError as e:
        sys.stderr.write("%s: %s\n" % (e.code().name, e.details()))
        sys.exit(1)
    print(json_format.MessageToJson(response, preserving_proto_field_name=True,
                                    including_default_value_fields=True))


def main(argv):
    if len(argv) == 4 and argv[1] == "--compile":
        compile_proto(argv[2], argv[3])
    elif len(argv) in (4, 5):
        call(argv[1], argv[2], argv[3], argv[4] if len(argv) == 5 else "{}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
