"""The LlamaIndex adapter the way LlamaIndex users write it."""
