"""Benchmarks: `make bench` (see `benchmarks/__main__.py`); results in RESULTS.md."""
