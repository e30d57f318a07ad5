"""finch's command line: thin typer wrappers over library functions."""
