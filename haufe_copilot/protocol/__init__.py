"""The pure protocol, no I/O: request building, decoding, tool-call assembly, and the retry,
stop and deadline policies."""
