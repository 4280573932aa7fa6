"""Tokens bound to a given policy, made by the root token of a test server."""

from __future__ import annotations

import uuid

from tests.runtime.secrets.bao import root_hvac
from tests.servers import BaoServer


def narrow_token(server: BaoServer, policy: str, **token: object) -> str:
    """A token whose only policy (besides Vault's `default`) is `policy`."""
    root = root_hvac(server)
    name = f"test-{uuid.uuid4().hex[:10]}"
    root.sys.create_or_update_policy(name, policy)
    created = root.auth.token.create(policies=[name], **token)
    return str(created["auth"]["client_token"])
