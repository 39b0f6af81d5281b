"""Generated protobuf and gRPC stubs for package ledgerflow.v1 (scripts/gen-protos)."""
