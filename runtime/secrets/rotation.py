"""Versioned rotation of an agent's secrets, and the separate step that destroys what a
rotation superseded once its grace period is over.

Rotating writes a new KV v2 version with fresh API keys and leaves the previous version
readable, so consumers still holding the old key keep working while they pick up the new one.
`destroy_superseded` is the second half: it destroys every version whose successor has existed
longer than the grace period. It is a plain call (run it from a CronJob or an operator) and
never waits: the grace period is judged against the client's clock.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr

from runtime.secrets.client import SecretsClient
from runtime.secrets.errors import SecretNotFound
from runtime.secrets.models import SecretMetadata, SecretVersion

__all__ = [
    "Rotated",
    "destroy_superseded",
    "destroy_superseded_under",
    "rotate_api_keys",
    "superseded_past_grace",
]

KEY_BYTES = 32  # 256 bits of randomness per API key


@dataclass(frozen=True)
class Rotated:
    path: str
    previous_version: int | None  # None: the first version was created
    secret: SecretVersion  # the new version, values as SecretStr


def rotate_api_keys(
    client: SecretsClient, path: str, keys: Sequence[str], *, key_bytes: int = KEY_BYTES
) -> Rotated:
    """Write a new version of `path` with a fresh `secrets.token_urlsafe` value for each of
    `keys`; other fields of the current version are carried over unchanged.

    The write is check-and-set on the version read, so two rotations racing each other cannot
    both win; the loser gets Vault's refusal rather than overwriting a key just handed out.
    """
    if not keys:
        raise ValueError("name at least one key to rotate")
    if key_bytes < 16:
        raise ValueError("API keys need at least 16 bytes of randomness")
    try:
        current: SecretVersion | None = client.read(path)
    except SecretNotFound:
        current = None  # nothing to carry over: this rotation creates version 1
    data: dict[str, str | SecretStr] = dict(current.data) if current is not None else {}
    for key in keys:
        data[key] = secrets.token_urlsafe(key_bytes)
    version = client.write(path, data, cas=current.version if current is not None else 0)
    return Rotated(
        path=path,
        previous_version=current.version if current is not None else None,
        secret=client.read(path, version=version),
    )


def superseded_past_grace(metadata: SecretMetadata, grace: timedelta, now: datetime) -> list[int]:
    """Versions not yet destroyed whose next version was written at least `grace` ago.

    A version stops being current when its successor is written: the grace period runs from
    then, not from the version's own creation.
    """
    numbers = sorted(metadata.versions)
    due = []
    for older, newer in itertools.pairwise(numbers):
        info = metadata.versions[older]
        if info.destroyed or older >= metadata.current_version:
            continue
        if metadata.versions[newer].created_time + grace <= now:
            due.append(older)
    return due


def destroy_superseded(
    client: SecretsClient, path: str, grace: timedelta, *, now: datetime | None = None
) -> list[int]:
    """Destroy the versions of `path` superseded for longer than `grace`; returns them."""
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    due = superseded_past_grace(client.metadata(path), grace, now or client.clock())
    if due:
        client.destroy_versions(path, due)
    return due


def destroy_superseded_under(
    client: SecretsClient, prefix: str, grace: timedelta, *, now: datetime | None = None
) -> dict[str, list[int]]:
    """`destroy_superseded` for every secret below the folder `prefix`, recursively."""
    when = now or client.clock()
    destroyed: dict[str, list[int]] = {}
    folders = [prefix.strip("/")]
    while folders:
        folder = folders.pop()
        for name in client.list(folder):
            child = f"{folder}/{name}" if folder else name
            if name.endswith("/"):
                folders.append(child.rstrip("/"))
                continue
            due = destroy_superseded(client, child, grace, now=when)
            if due:
                destroyed[child] = due
    return destroyed
