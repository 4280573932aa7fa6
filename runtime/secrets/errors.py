"""What can go wrong talking to Vault, one class per cause the caller acts on differently.

Every message names the operation and the path (`read agents/pools/coder/api`), never a
secret value: Vault's error bodies carry none (they echo neither request nor secret data),
and these classes add none. `outcome` is the short word the audit record stores.
"""

from __future__ import annotations

from collections.abc import Sequence

import hvac.exceptions
import requests

__all__ = [
    "LoginFailed",
    "MalformedResponse",
    "PermissionDenied",
    "SecretNotFound",
    "SecretsError",
    "VaultRequestFailed",
    "VaultSealed",
    "VaultUnreachable",
    "translate",
]


class SecretsError(Exception):
    """Base of every secrets failure: which operation on which path, and why."""

    outcome = "failed"

    def __init__(self, operation: str, path: str, reason: str) -> None:
        self.operation = operation
        self.path = path
        self.reason = reason
        super().__init__(f"{operation} {path}: {reason}")


class VaultSealed(SecretsError):
    """Vault answers but is sealed: nothing can be read until it is unsealed."""

    outcome = "sealed"


class PermissionDenied(SecretsError):
    """The token is valid but its policies do not allow this operation on this path."""

    outcome = "denied"


class SecretNotFound(SecretsError):
    """No secret (or no such live version) at the path."""

    outcome = "not-found"


class VaultUnreachable(SecretsError):
    """Network failure or Vault not serving: connection refused, timeout, TLS, 5xx."""

    outcome = "unreachable"


class LoginFailed(SecretsError):
    """Vault refused the login (bad, expired or foreign service-account token, unknown role),
    or the client's own token is invalid or expired and cannot be replaced."""

    outcome = "login-failed"


class VaultRequestFailed(SecretsError):
    """Vault refused the request for another reason (bad request, rate limit, ...)."""

    def __init__(self, operation: str, path: str, status: int | None, errors: Sequence[str]):
        self.status = status
        detail = "; ".join(errors) if errors else "no error detail"
        super().__init__(operation, path, f"Vault answered {status}: {detail}")


class MalformedResponse(SecretsError):
    """Vault's answer lacks what the operation needs (a client/server contract mismatch)."""


def _errors(err: hvac.exceptions.VaultError) -> list[str]:
    return [str(e) for e in (err.errors or [])]


def _status(err: hvac.exceptions.VaultError) -> int | None:
    for cls, status in _STATUS.items():
        if isinstance(err, cls):
            return status
    return None


_STATUS: dict[type[hvac.exceptions.VaultError], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def translate(err: Exception, operation: str, path: str) -> SecretsError:
    """The SecretsError for an hvac or requests exception raised by `operation` on `path`."""
    if isinstance(err, SecretsError):
        return err
    if isinstance(err, requests.exceptions.RequestException):
        # The class name says which (ConnectionError, ConnectTimeout, SSLError, ...); the
        # text is the URL and the socket error, no request body.
        return VaultUnreachable(operation, path, f"{type(err).__name__}: {err}")
    if isinstance(err, hvac.exceptions.VaultDown):
        if any("sealed" in e.lower() for e in _errors(err)):
            return VaultSealed(operation, path, "Vault is sealed")
        return VaultUnreachable(operation, path, "Vault is unavailable (503)")
    if isinstance(err, hvac.exceptions.VaultNotInitialized):
        return VaultSealed(operation, path, "Vault is not initialised")
    if isinstance(err, hvac.exceptions.Forbidden):
        return PermissionDenied(operation, path, "permission denied by the token's policies")
    if isinstance(err, hvac.exceptions.Unauthorized):
        return LoginFailed(operation, path, "Vault does not accept the client token")
    if isinstance(err, hvac.exceptions.InvalidPath):
        return SecretNotFound(operation, path, "no secret at this path (or version)")
    if isinstance(err, hvac.exceptions.BadGateway):
        return VaultUnreachable(operation, path, "bad gateway (502) in front of Vault")
    if isinstance(err, hvac.exceptions.VaultError):
        return VaultRequestFailed(operation, path, _status(err), _errors(err))
    raise TypeError(f"not a Vault client error: {type(err).__name__}") from err
