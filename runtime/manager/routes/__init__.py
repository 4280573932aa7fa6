"""The manager's routes, one module per resource: tasks, agents, alerts."""
