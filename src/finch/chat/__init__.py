"""`finch chat`: a conversation with any model, in a REPL or one question at a time."""
