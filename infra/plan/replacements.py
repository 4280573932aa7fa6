"""Which input changes make the provider replace a resource rather than update it.

The fields are the provider schema's replace-on-change (ForceNew) attributes for the types
whose replacement matters to an operator: losing a node group or the control plane.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = ["REPLACE_ON", "replacing_fields"]

REPLACE_ON: Final = MappingProxyType(
    {
        "aws:eks/nodeGroup:NodeGroup": (
            "amiType",
            "capacityType",
            "clusterName",
            "diskSize",
            "instanceTypes",
            "launchTemplate.id",
            "launchTemplate.name",
            "nodeGroupName",
            "nodeGroupNamePrefix",
            "nodeRoleArn",
            "remoteAccess",
            "subnetIds",
        ),
        "aws:eks/cluster:Cluster": ("name", "roleArn", "encryptionConfig"),
        "aws:eks/addon:Addon": ("addonName", "clusterName"),
    }
)


def replacing_fields(resource_type: str, changed_inputs: list[str]) -> list[str]:
    """The changed input paths (`instanceTypes[0]`, ...) that force a replacement."""
    triggers = REPLACE_ON.get(resource_type, ())
    found = []
    for path in changed_inputs:
        for trigger in triggers:
            if path == trigger or path.startswith((f"{trigger}.", f"{trigger}[")):
                found.append(path)
                break
    return found
