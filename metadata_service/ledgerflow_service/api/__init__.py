"""The gRPC API: servicers, interceptors, authentication, the watch hub that feeds
watch streams, the server and its worker processes."""
