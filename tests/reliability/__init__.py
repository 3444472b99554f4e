"""Reliability harness: the fault matrix (`python -m tests.reliability.matrix`), the load and soak
rounds (`python -m tests.reliability.soak`), and what both measure with (`probes`, `servers`)."""
