"""LangChain integration for Haufe Copilot (`ChatHaufeCopilot`, the retriever): coming next."""
