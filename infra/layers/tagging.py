"""The tags every AWS resource carries, built from the stack's typed config."""

from __future__ import annotations

from contracts.config import Environment, TagsConfig

__all__ = ["REQUIRED_TAG_KEYS", "Tagging"]

REQUIRED_TAG_KEYS = ("environment", "owner", "cost-centre", "managed-by")


class Tagging:
    """Hands each resource its tags: the required set, the extras and a Name."""

    def __init__(self, environment: Environment, tags: TagsConfig) -> None:
        self._base: dict[str, str] = {
            **tags.extra,
            "environment": environment.value,
            "owner": tags.owner,
            "cost-centre": tags.cost_centre,
            "managed-by": "pulumi",
        }

    def __call__(self, name: str | None = None, **extra: str) -> dict[str, str]:
        tags = {**self._base, **extra}
        if name is not None:
            tags["Name"] = name
        return tags
