"""Vault secrets for the runtime: Kubernetes-auth login, KV v2, rotation, transit, audit.

No secret is copied into a Kubernetes Secret or encrypted by home-made code: values live in
Vault's KV v2 mount, and application data that must be encrypted goes through Vault's
transit engine.
"""

from contracts.settings.vault import VaultSettings
from runtime.secrets.audit import Actor, AuditRecord, AuditSink, AuditTrail, LogAudit, RecentAudit
from runtime.secrets.auth import KubernetesLogin, Login, StaticToken
from runtime.secrets.client import SecretsClient, login_from_settings
from runtime.secrets.errors import (
    LoginFailed,
    MalformedResponse,
    PermissionDenied,
    SecretNotFound,
    SecretsError,
    VaultRequestFailed,
    VaultSealed,
    VaultUnreachable,
)
from runtime.secrets.models import DatabaseLogin, SecretMetadata, SecretVersion, VersionInfo
from runtime.secrets.rotation import (
    Rotated,
    destroy_superseded,
    destroy_superseded_under,
    rotate_api_keys,
)
from runtime.secrets.session import TokenLease, VaultSession

__all__ = [
    "Actor",
    "AuditRecord",
    "AuditSink",
    "AuditTrail",
    "DatabaseLogin",
    "KubernetesLogin",
    "LogAudit",
    "Login",
    "LoginFailed",
    "MalformedResponse",
    "PermissionDenied",
    "RecentAudit",
    "Rotated",
    "SecretMetadata",
    "SecretNotFound",
    "SecretVersion",
    "SecretsClient",
    "SecretsError",
    "StaticToken",
    "TokenLease",
    "VaultRequestFailed",
    "VaultSealed",
    "VaultSession",
    "VaultSettings",
    "VaultUnreachable",
    "VersionInfo",
    "destroy_superseded",
    "destroy_superseded_under",
    "login_from_settings",
    "rotate_api_keys",
]
