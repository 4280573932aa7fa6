"""Operator tooling above runtime and infra: the `agentops` CLI (plan, diff, dev, doctor, cost)."""
