"""`finch serve`: an OpenAI-compatible API over any finch generation backend."""
