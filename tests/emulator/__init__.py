"""The emulator on the wire, with plain httpx."""
