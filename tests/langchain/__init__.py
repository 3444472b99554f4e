"""The LangChain adapter the way LangChain users write it."""
