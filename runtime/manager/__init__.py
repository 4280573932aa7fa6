"""The agent manager: task intake, durable queues, agent registry and dispatch."""
