"""`agentops dev`: the whole runtime as real processes on one machine, from a stack's config."""
