"""What KV v2 answers, typed: a secret version (values as `SecretStr`) and a path's metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from runtime.secrets.errors import MalformedResponse

__all__ = ["DatabaseLogin", "SecretMetadata", "SecretVersion", "VersionInfo"]


def _time(value: Any, operation: str, path: str, what: str) -> datetime | None:
    # KV v2 writes "" for a time that has not happened (deletion_time of a live version).
    if value in ("", None):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise MalformedResponse(operation, path, f"{what} is not a timestamp") from None


def _int(value: Any, operation: str, path: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponse(operation, path, f"{what} is not an integer")
    return value


@dataclass(frozen=True)
class SecretVersion:
    path: str
    version: int
    created_time: datetime
    # SecretStr so printing, logging or repr-ing a version shows no value.
    data: Mapping[str, SecretStr]

    def value(self, key: str) -> str:
        return self.data[key].get_secret_value()

    @classmethod
    def parse(cls, path: str, body: Any) -> SecretVersion:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise MalformedResponse("read", path, "no data in the answer")
        values, meta = data.get("data"), data.get("metadata")
        if not isinstance(values, dict) or not isinstance(meta, dict):
            raise MalformedResponse("read", path, "no data or metadata in the answer")
        secret: dict[str, SecretStr] = {}
        for key, value in values.items():
            if not isinstance(value, str):
                # The platform stores strings only; naming the key says where, not what.
                raise MalformedResponse("read", path, f"the value of {key!r} is not a string")
            secret[key] = SecretStr(value)
        created = _time(meta.get("created_time"), "read", path, "created_time")
        if created is None:
            raise MalformedResponse("read", path, "the version has no created_time")
        return cls(path, _int(meta.get("version"), "read", path, "version"), created, secret)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_time: datetime
    deletion_time: datetime | None
    destroyed: bool

    @property
    def live(self) -> bool:
        return not self.destroyed and self.deletion_time is None


@dataclass(frozen=True)
class SecretMetadata:
    path: str
    current_version: int
    oldest_version: int
    created_time: datetime
    updated_time: datetime
    versions: Mapping[int, VersionInfo]

    @classmethod
    def parse(cls, path: str, body: Any) -> SecretMetadata:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
            raise MalformedResponse("metadata", path, "no versions in the answer")
        versions = {}
        for number, info in data["versions"].items():
            if not isinstance(info, dict):
                raise MalformedResponse("metadata", path, f"version {number} has no details")
            created = _time(info.get("created_time"), "metadata", path, "created_time")
            if created is None:
                raise MalformedResponse("metadata", path, f"version {number} has no created_time")
            versions[int(number)] = VersionInfo(
                version=int(number),
                created_time=created,
                deletion_time=_time(info.get("deletion_time"), "metadata", path, "deletion_time"),
                destroyed=bool(info.get("destroyed")),
            )
        created = _time(data.get("created_time"), "metadata", path, "created_time")
        updated = _time(data.get("updated_time"), "metadata", path, "updated_time")
        if created is None or updated is None:
            raise MalformedResponse("metadata", path, "the path has no created/updated time")
        return cls(
            path=path,
            current_version=_int(data.get("current_version"), "metadata", path, "current_version"),
            oldest_version=_int(data.get("oldest_version"), "metadata", path, "oldest_version"),
            created_time=created,
            updated_time=updated,
            versions=dict(sorted(versions.items())),
        )


@dataclass(frozen=True)
class DatabaseLogin:
    """A dynamic database login from Vault's database secrets engine: valid for its lease."""

    path: str
    username: str
    password: SecretStr
    lease_id: str
    lease_seconds: int
    obtained_at: datetime

    @classmethod
    def parse(cls, path: str, body: Any, now: datetime) -> DatabaseLogin:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise MalformedResponse("database-login", path, "no data in the answer")
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise MalformedResponse("database-login", path, "no username and password")
        lease_id = body.get("lease_id")
        if not isinstance(lease_id, str) or not lease_id:
            raise MalformedResponse("database-login", path, "no lease id")
        seconds = _int(body.get("lease_duration"), "database-login", path, "lease_duration")
        return cls(path, username, SecretStr(password), lease_id, seconds, now)
