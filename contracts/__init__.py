"""The facts runtime and infra share: config and settings models, ports, endpoints, metric
names, the alert catalogue, prices. Depends on pydantic (and pydantic-settings) only."""
