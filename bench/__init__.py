"""Benchmarks: `python -m bench.harness` (make bench) and the older single-purpose scripts."""
