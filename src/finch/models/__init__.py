"""Models by name: the built-in ones, the cache, and turning a GGUF or hub id into something every stage can load."""
