"""The I/O drivers: the sync and async clients over httpx, and the stream objects they hand out."""
