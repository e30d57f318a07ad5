"""finch: fine-tune LLMs on consumer hardware from a taxonomy of what you want the model to know."""

__version__ = "0.1.0"
