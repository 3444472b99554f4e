"""LlamaIndex integration for Haufe Copilot (`HaufeCopilot`, retriever, engines): coming next."""
