"""How the client obtains its Vault token.

In a pod: Kubernetes auth with the projected service-account token. The kubelet rotates that
file, so it is read again at every login rather than once at start. Outside the cluster an
operator tool may hand over a token it already has; that token cannot be replaced when it
expires.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import hvac
from pydantic import SecretStr

__all__ = ["KubernetesLogin", "Login", "StaticToken"]


class Login(Protocol):
    """Gives `client` a token; raises an hvac/requests error or OSError when it cannot."""

    @property
    def role(self) -> str | None:
        """The role named in audit records before Vault has said who the token belongs to."""

    @property
    def repeatable(self) -> bool:
        """Whether calling `login` again yields a fresh token (so an expired one is replaced)."""

    def login(self, client: hvac.Client) -> None: ...


class KubernetesLogin:
    def __init__(self, role: str, token_file: Path, mount: str = "kubernetes") -> None:
        self._role = role
        self.token_file = token_file
        self.mount = mount

    @property
    def role(self) -> str:
        return self._role

    @property
    def repeatable(self) -> bool:
        return True

    def login(self, client: hvac.Client) -> None:
        jwt = self.token_file.read_text().strip()
        if not jwt:
            raise OSError(f"{self.token_file} is empty")
        client.auth.kubernetes.login(self._role, jwt, use_token=True, mount_point=self.mount)


class StaticToken:
    def __init__(self, token: SecretStr) -> None:
        self._token = token

    @property
    def role(self) -> None:
        return None

    @property
    def repeatable(self) -> bool:
        return False

    def login(self, client: hvac.Client) -> None:
        client.token = self._token.get_secret_value()
