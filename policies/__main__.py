"""Entry point of the pack for the Pulumi engine (`--policy-pack policies`)."""

from pulumi_policy import EnforcementLevel, PolicyPack

from policies import ALL_POLICIES

# Constructing the pack starts the analyzer server the engine talks to.
PolicyPack(
    name="agentops",
    description="Security, upgrade-safety and cost guard rails of the agent platform",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=ALL_POLICIES,
)
