"""The core clients and the conversation layer over real HTTP against the emulator, and the CLI."""
