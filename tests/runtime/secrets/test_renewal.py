"""The token is renewed or replaced before it expires, judged by an injectable clock."""

from __future__ import annotations

import uuid
from datetime import timedelta

import hvac
import pytest
from pydantic import SecretStr

from runtime.secrets import AuditTrail, LoginFailed, RecentAudit, SecretsClient, StaticToken
from tests.runtime.secrets.bao import FakeClock, MakeClient, root_hvac
from tests.runtime.secrets.policies import narrow_token
from tests.servers import BaoServer

READ_ALL = 'path "agents/*" { capabilities = ["read", "list"] }'


class UserpassLogin:
    """A repeatable login against a real auth method, shaped like Kubernetes auth's tokens."""

    role = None
    repeatable = True

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def login(self, client: hvac.Client) -> None:
        client.auth.userpass.login(self.username, self.password, mount_point="userpass")


def userpass_user(server: BaoServer, **token_params: object) -> UserpassLogin:
    root = root_hvac(server)
    if "userpass/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("userpass")
    policy = f"read-all-{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_policy(policy, READ_ALL)
    username, password = f"u{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    root.adapter.post(
        f"/v1/auth/userpass/users/{username}",
        json={"password": password, "token_policies": [policy], **token_params},
    )
    return UserpassLogin(username, password)


def operations(recent: RecentAudit) -> list[str]:
    return [r.operation for r in recent.records() if r.operation in ("login", "renew")]


def lookup_self(client: SecretsClient) -> dict[str, object]:
    body = client.session.call("lookup-self", "auth/token", lambda c: c.auth.token.lookup_self())
    return dict(body["data"])


@pytest.fixture
def seeded(make_client: MakeClient, folder: str) -> str:
    """A secret to read, written by a client auditing elsewhere (only the tested one counts)."""
    path = f"{folder}/api"
    make_client(audit=AuditTrail([])).write(path, {"api_key": "k"})
    return path


def test_a_renewable_token_is_renewed_inside_the_margin(
    bao: BaoServer,
    make_client: MakeClient,
    recent: RecentAudit,
    clock: FakeClock,
    seeded: str,
) -> None:
    login = userpass_user(bao, token_ttl="120s", token_max_ttl="1h")
    client = make_client(login=login, renew_margin_s=60)
    client.read(seeded)
    assert "last_renewal_time" not in lookup_self(client)

    # Vault counts the TTL in whole seconds from its side: leave slack for a second passing.
    clock.advance(timedelta(seconds=50))  # about 70 s left: outside the margin
    client.read(seeded)
    assert operations(recent) == ["login"]

    clock.advance(timedelta(seconds=15))  # about 55 s left: inside it
    client.read(seeded)
    assert operations(recent) == ["login", "renew"]
    token = lookup_self(client)
    assert token["last_renewal_time"]  # Vault itself saw the renewal
    assert token["display_name"] == f"userpass-{login.username}"

    # The renewal restarted the lease from the clock's now: no renewal until the margin again.
    clock.advance(timedelta(seconds=50))
    client.read(seeded)
    assert operations(recent) == ["login", "renew"]


def test_a_token_that_cannot_be_renewed_is_replaced_by_a_fresh_login(
    bao: BaoServer,
    make_client: MakeClient,
    recent: RecentAudit,
    clock: FakeClock,
    seeded: str,
) -> None:
    login = userpass_user(bao, token_ttl="120s", token_type="batch")
    client = make_client(login=login, renew_margin_s=60)
    client.read(seeded)
    assert client.session.lease is not None and not client.session.lease.renewable
    first = lookup_self(client)["id"]

    clock.advance(timedelta(seconds=70))
    client.read(seeded)
    assert operations(recent) == ["login", "login"]
    assert lookup_self(client)["id"] != first


def test_a_token_near_its_explicit_max_ttl_is_replaced_not_renewed(
    bao: BaoServer,
    make_client: MakeClient,
    recent: RecentAudit,
    clock: FakeClock,
    seeded: str,
) -> None:
    login = userpass_user(bao, token_ttl="120s", token_explicit_max_ttl="150s")
    client = make_client(login=login, renew_margin_s=60)
    client.read(seeded)
    first = lookup_self(client)["accessor"]

    clock.advance(timedelta(seconds=100))  # 20 s left before the max: renewing cannot help
    client.read(seeded)
    assert operations(recent) == ["login", "login"]
    assert lookup_self(client)["accessor"] != first


def test_a_static_token_past_its_end_fails_clearly(
    bao: BaoServer, make_client: MakeClient, clock: FakeClock, seeded: str
) -> None:
    token = narrow_token(bao, READ_ALL, ttl="120s", renewable=False)
    client = make_client(login=StaticToken(SecretStr(token)), renew_margin_s=60)
    client.read(seeded)
    clock.advance(timedelta(seconds=90))  # inside the margin, not yet expired: carry on
    client.read(seeded)
    clock.advance(timedelta(seconds=31))
    with pytest.raises(LoginFailed, match="expired and cannot be renewed or replaced"):
        client.read(seeded)


def test_a_token_without_expiry_is_never_renewed(
    admin: SecretsClient, recent: RecentAudit, clock: FakeClock, seeded: str
) -> None:
    admin.read(seeded)
    assert admin.session.lease is not None and admin.session.lease.ends_at is None
    clock.advance(timedelta(days=400))
    admin.read(seeded)
    assert operations(recent) == ["login"]


def test_a_revoked_token_is_replaced_and_the_call_retried_once(
    bao: BaoServer, make_client: MakeClient, recent: RecentAudit, seeded: str
) -> None:
    login = userpass_user(bao, token_ttl="1h")
    client = make_client(login=login)
    client.read(seeded)
    root_hvac(bao).auth.token.revoke(str(lookup_self(client)["id"]))

    assert client.read(seeded).value("api_key") == "k"
    assert operations(recent) == ["login", "login"]
    reads = [r.outcome for r in recent.records() if r.operation == "read"]
    assert reads == ["ok", "ok"]  # the retried read is one access, recorded once
