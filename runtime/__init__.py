"""The runtime the platform deploys (agent manager, cost engine, ...) and the `agentops` CLI."""
