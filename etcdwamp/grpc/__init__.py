"""etcd's gRPC API: the vendored .proto files, the generated protobuf modules and their codec."""
