"""The runtime's secrets client: KV v2 read / write / list / metadata / destroy, transit, and
dynamic database logins.

Paths are relative to the KV mount (`pools/coder/api`); audit records and errors name them
with the mount in front (`agents/pools/coder/api`). A missing path is an error, never an
empty result.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import hvac
from pydantic import SecretStr

from contracts.settings.vault import VaultSettings
from runtime.secrets.audit import AuditTrail
from runtime.secrets.auth import KubernetesLogin, Login, StaticToken
from runtime.secrets.clock import Clock, utc_now
from runtime.secrets.errors import MalformedResponse
from runtime.secrets.models import DatabaseLogin, SecretMetadata, SecretVersion
from runtime.secrets.session import VaultSession

__all__ = ["SecretsClient", "login_from_settings"]


def login_from_settings(settings: VaultSettings) -> Login:
    if settings.token is not None:
        return StaticToken(settings.token)
    assert settings.role is not None  # the settings refuse having neither
    return KubernetesLogin(settings.role, settings.token_file, settings.auth_mount)


def _clean(path: str) -> str:
    cleaned = path.strip("/")
    if not cleaned or any(part in ("", ".", "..") for part in cleaned.split("/")):
        raise ValueError(f"not a secret path: {path!r}")
    return cleaned


def _data(body: Any, operation: str, path: str) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise MalformedResponse(operation, path, "no data in the answer")
    return data


class SecretsClient:
    def __init__(self, session: VaultSession) -> None:
        self.session = session
        self.kv_mount = session.settings.kv_mount
        self.transit_mount = session.settings.transit_mount

    @classmethod
    def from_settings(
        cls,
        settings: VaultSettings | None = None,
        *,
        login: Login | None = None,
        clock: Clock = utc_now,
        audit: AuditTrail | None = None,
    ) -> SecretsClient:
        settings = settings or VaultSettings()
        return cls(
            VaultSession(settings, login or login_from_settings(settings), clock=clock, audit=audit)
        )

    @property
    def clock(self) -> Clock:
        return self.session.clock

    def _where(self, path: str) -> str:
        return f"{self.kv_mount}/{path}"

    # -- KV v2 -------------------------------------------------------------------------

    def read(self, path: str, version: int | None = None) -> SecretVersion:
        """A version of the secret (the current one by default)."""
        path = _clean(path)
        where = self._where(path)

        def request(client: hvac.Client) -> SecretVersion:
            body = client.secrets.kv.v2.read_secret_version(
                path, version=version, mount_point=self.kv_mount, raise_on_deleted_version=True
            )
            return SecretVersion.parse(where, body)

        return self.session.call("read", where, request, version=lambda s: s.version)

    def write(
        self, path: str, data: Mapping[str, str | SecretStr], *, cas: int | None = None
    ) -> int:
        """Write a new version; `cas` makes it conditional on the current version (0: new
        path only). Returns the version written."""
        path = _clean(path)
        where = self._where(path)
        if not data:
            raise ValueError(f"write {where}: nothing to write")
        plain = {
            k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in data.items()
        }

        def request(client: hvac.Client) -> int:
            body = client.secrets.kv.v2.create_or_update_secret(
                path, secret=plain, cas=cas, mount_point=self.kv_mount
            )
            version = _data(body, "write", where).get("version")
            if isinstance(version, bool) or not isinstance(version, int):
                raise MalformedResponse("write", where, "no version in the answer")
            return version

        return self.session.call("write", where, request, version=lambda v: v)

    def list(self, path: str = "") -> list[str]:
        """Names under a folder (sub-folders end with '/'); a folder with nothing is missing."""
        path = _clean(path) if path.strip("/") else ""
        where = self._where(path) if path else self.kv_mount

        def request(client: hvac.Client) -> list[str]:
            keys = _data(
                client.secrets.kv.v2.list_secrets(path, mount_point=self.kv_mount), "list", where
            ).get("keys")
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise MalformedResponse("list", where, "no keys in the answer")
            return sorted(keys)

        return self.session.call("list", where, request)

    def metadata(self, path: str) -> SecretMetadata:
        """Versions of the secret with their creation, deletion and destruction."""
        path = _clean(path)
        where = self._where(path)

        def request(client: hvac.Client) -> SecretMetadata:
            body = client.secrets.kv.v2.read_secret_metadata(path, mount_point=self.kv_mount)
            return SecretMetadata.parse(where, body)

        return self.session.call("metadata", where, request, version=lambda m: m.current_version)

    def destroy_versions(self, path: str, versions: Sequence[int]) -> None:
        """Destroy these versions for good (their data is gone; metadata stays)."""
        path = _clean(path)
        where = self._where(path)
        if not versions:
            raise ValueError(f"destroy {where}: no versions named")
        for number in versions:

            def request(client: hvac.Client, number: int = number) -> int:
                client.secrets.kv.v2.destroy_secret_versions(
                    path, versions=[number], mount_point=self.kv_mount
                )
                return number

            # One call per version: each destroyed version gets its own audit record.
            self.session.call("destroy", where, request, version=lambda v: v)

    # -- transit -----------------------------------------------------------------------

    def encrypt(self, key: str, plaintext: bytes, *, context: bytes | None = None) -> str:
        """Vault's ciphertext (`vault:v1:...`) of `plaintext` under the named transit key."""
        where = f"{self.transit_mount}/encrypt/{_clean(key)}"

        def request(client: hvac.Client) -> str:
            body = client.secrets.transit.encrypt_data(
                key,
                plaintext=base64.b64encode(plaintext).decode(),
                context=base64.b64encode(context).decode() if context is not None else None,
                mount_point=self.transit_mount,
            )
            ciphertext = _data(body, "encrypt", where).get("ciphertext")
            if not isinstance(ciphertext, str):
                raise MalformedResponse("encrypt", where, "no ciphertext in the answer")
            return ciphertext

        return self.session.call("encrypt", where, request)

    def decrypt(self, key: str, ciphertext: str, *, context: bytes | None = None) -> bytes:
        where = f"{self.transit_mount}/decrypt/{_clean(key)}"

        def request(client: hvac.Client) -> bytes:
            body = client.secrets.transit.decrypt_data(
                key,
                ciphertext=ciphertext,
                context=base64.b64encode(context).decode() if context is not None else None,
                mount_point=self.transit_mount,
            )
            encoded = _data(body, "decrypt", where).get("plaintext")
            if not isinstance(encoded, str):
                raise MalformedResponse("decrypt", where, "no plaintext in the answer")
            return base64.b64decode(encoded)

        return self.session.call("decrypt", where, request)

    # -- database secrets engine -------------------------------------------------------

    def database_login(self, path: str) -> DatabaseLogin:
        """A new login from a database role's `creds` path (`database/creds/<role>`, from the
        mount): each read is a lease of its own, revoked by Vault when it ends."""
        where = _clean(path)

        def request(client: hvac.Client) -> DatabaseLogin:
            return DatabaseLogin.parse(where, client.read(where), self.clock())

        return self.session.call("database-login", where, request)
