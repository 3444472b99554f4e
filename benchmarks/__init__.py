"""Benchmarks: `make bench` (see `benchmarks/__main__.py`); results in RESULTS.md."""

from pathlib import Path

#: The checkout: the packages measured, RESULTS.md and the README written.
ROOT = Path(__file__).resolve().parent.parent
