"""Benchmarks: the cost of the access rules (bench.rls), of an engine run (bench.engine), of quotas (bench.quota)."""
