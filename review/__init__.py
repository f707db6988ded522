"""Review tooling, outside the product: the access matrix, PostgREST emulation, the local Management API server."""
