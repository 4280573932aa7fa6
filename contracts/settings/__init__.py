"""Each runtime service's settings (pydantic-settings), read from AGENTOPS_* variables by the
service and rendered into its Deployment's env by infra: one declaration, two readers."""
