"""What the runtime exposes to Prometheus, and the alerts defined on it."""
