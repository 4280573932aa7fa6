"""The CrossGuard policy pack: one module per concern, each exporting its policies.

`policies/__main__.py` serves them to `pulumi preview --policy-pack policies`; the offline
plan and the tests call the same policy objects directly.
"""

from pulumi_policy import Policy

from policies.upgrades import POLICIES as UPGRADE_POLICIES

__all__ = ["ALL_POLICIES"]

ALL_POLICIES: list[Policy] = [*UPGRADE_POLICIES]
