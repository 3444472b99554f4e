"""The pure protocol, sans I/O: error classification, decoders, thread plans, stop sequences and
tool-call assembly."""
