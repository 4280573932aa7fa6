"""The cost engine's routes, one module per resource."""
