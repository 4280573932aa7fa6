"""Task handlers: what a worker runs for a task, chosen by import path in its settings."""
