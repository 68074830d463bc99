"""Benchmarks of distributed_pz: one harness, results appended as JSON lines, tables generated."""
