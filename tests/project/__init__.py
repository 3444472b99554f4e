"""The project as a user meets it: the package, the lock, the examples, the demo, the benchmark harness."""
