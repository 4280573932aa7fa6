"""The base every config model derives from, and the error a cross-field rule raises."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

__all__ = ["DNS_LABEL", "ConfigModel", "DnsLabel", "RuleViolation"]

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

DnsLabel = Annotated[
    str,
    StringConstraints(min_length=1, max_length=40, pattern=DNS_LABEL.pattern),
    Field(description="lower-case DNS label: a-z, 0-9 and '-', 1-40 characters"),
]


class ConfigModel(BaseModel):
    """Frozen, closed to unknown keys, camelCase in the stack files (Pulumi's convention)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )


class RuleViolation(ValueError):
    """A cross-field rule failed for the key `field` (relative to the model raising it).

    The loader joins `field` onto the model's own location so the message names the exact
    stack-file key, e.g. `agentops:cluster.nodeGroups[1].maxSize`.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r}: {allowed}")
