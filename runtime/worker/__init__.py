"""The agent worker: the process each agent-pool Deployment runs."""
