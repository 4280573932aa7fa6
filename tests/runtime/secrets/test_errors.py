"""Each failure cause is its own exception, raised by the real server's answer."""

from __future__ import annotations

from pathlib import Path

import hvac
import pytest

from runtime.secrets import (
    KubernetesLogin,
    LoginFailed,
    PermissionDenied,
    RecentAudit,
    SecretNotFound,
    SecretsClient,
    VaultSealed,
    VaultUnreachable,
)
from tests.runtime.secrets.bao import MakeClient, root_hvac
from tests.runtime.secrets.policies import narrow_token
from tests.servers import BaoServer, free_port


def test_sealed_vault_raises_sealed_for_every_operation(
    fresh_bao: BaoServer, make_client: MakeClient, recent: RecentAudit
) -> None:
    client = make_client(server=fresh_bao)
    client.write("pools/coder/api", {"api_key": "k"})
    root_hvac(fresh_bao).sys.seal()

    for call in (
        lambda: client.read("pools/coder/api"),
        lambda: client.write("pools/coder/api", {"api_key": "k2"}),
        lambda: client.list("pools"),
        lambda: client.encrypt("agent-data", b"x"),
    ):
        with pytest.raises(VaultSealed, match="sealed"):
            call()
    assert recent.records()[-1].outcome == "sealed"

    # Unsealed again, the same client carries on with the same data.
    root_hvac(fresh_bao).sys.submit_unseal_key(fresh_bao.unseal_key())
    assert client.read("pools/coder/api").value("api_key") == "k"


def test_policy_outside_the_token_raises_permission_denied(
    bao: BaoServer, admin: SecretsClient, make_client: MakeClient, folder: str
) -> None:
    admin.write(f"{folder}/mine/api", {"api_key": "mine"})
    admin.write(f"{folder}/theirs/api", {"api_key": "theirs"})
    token = narrow_token(bao, f'path "agents/data/{folder}/mine/*" {{ capabilities = ["read"] }}')
    client = make_client(token=token)

    assert client.read(f"{folder}/mine/api").value("api_key") == "mine"
    with pytest.raises(PermissionDenied) as caught:
        client.read(f"{folder}/theirs/api")
    assert caught.value.operation == "read"
    assert caught.value.path == f"agents/{folder}/theirs/api"
    assert "permission denied" in str(caught.value)
    with pytest.raises(PermissionDenied):
        client.write(f"{folder}/mine/api", {"api_key": "overwrite"})
    with pytest.raises(PermissionDenied):
        client.list(folder)


def test_an_error_message_never_holds_the_value_being_written(
    bao: BaoServer, make_client: MakeClient, folder: str
) -> None:
    token = narrow_token(bao, 'path "agents/data/nothing" { capabilities = ["read"] }')
    client = make_client(token=token)
    with pytest.raises(PermissionDenied) as caught:
        client.write(f"{folder}/x", {"api_key": "sk-this-must-not-leak"})
    assert "sk-this-must-not-leak" not in str(caught.value)
    assert "sk-this-must-not-leak" not in repr(caught.value.__cause__)


def test_missing_path_raises_not_found_naming_it(admin: SecretsClient, folder: str) -> None:
    with pytest.raises(SecretNotFound, match=f"read agents/{folder}/nothing-here"):
        admin.read(f"{folder}/nothing-here")


def test_nothing_listening_raises_unreachable(make_client: MakeClient) -> None:
    client = make_client(address=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(VaultUnreachable, match="ConnectionError") as caught:
        client.read("pools/coder/api")
    # The first thing that needs the network is the login's token lookup.
    assert caught.value.operation in ("login", "read")


def test_a_stopped_server_raises_unreachable(fresh_bao: BaoServer, make_client: MakeClient) -> None:
    client = make_client(server=fresh_bao)
    client.write("pools/coder/api", {"api_key": "k"})
    fresh_bao.stop()
    with pytest.raises(VaultUnreachable) as caught:
        client.read("pools/coder/api")
    assert (caught.value.operation, caught.value.path) == ("read", "agents/pools/coder/api")


def test_an_unknown_token_fails_the_login(make_client: MakeClient) -> None:
    client = make_client(token="s.not-a-token-of-this-server")
    with pytest.raises(LoginFailed, match="does not accept"):
        client.read("pools/coder/api")


def test_a_revoked_token_cannot_be_replaced_and_says_so(
    bao: BaoServer, make_client: MakeClient, admin: SecretsClient, folder: str
) -> None:
    admin.write(f"{folder}/api", {"api_key": "k"})
    token = narrow_token(bao, f'path "agents/data/{folder}/*" {{ capabilities = ["read"] }}')
    client = make_client(token=token)
    assert client.read(f"{folder}/api").value("api_key") == "k"
    root_hvac(bao).auth.token.revoke(token)
    with pytest.raises(LoginFailed, match="no longer accepts"):
        client.read(f"{folder}/api")


def test_an_unreadable_service_account_token_fails_the_login(
    bao: BaoServer, make_client: MakeClient, tmp_path: Path
) -> None:
    missing = tmp_path / "token"
    client = make_client(login=KubernetesLogin("manager", missing))
    with pytest.raises(LoginFailed, match="cannot read the service-account token") as caught:
        client.read("platform/manager/api")
    assert caught.value.path == "auth/kubernetes/login"
    missing.write_text("")
    with pytest.raises(LoginFailed, match="empty"):
        client.read("platform/manager/api")


def test_a_login_against_an_unknown_role_is_refused(
    bao: BaoServer, make_client: MakeClient, tmp_path: Path
) -> None:
    root = root_hvac(bao)
    if "kubernetes/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("kubernetes")
    jwt = tmp_path / "token"
    jwt.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl")
    client = make_client(login=KubernetesLogin("no-such-role", jwt))
    with pytest.raises(LoginFailed, match="Vault refused the login"):
        client.read("platform/manager/api")


def test_hvac_errors_outside_the_mapping_are_not_swallowed() -> None:
    from runtime.secrets.errors import VaultRequestFailed, translate

    err = translate(hvac.exceptions.RateLimitExceeded(errors=["slow down"]), "read", "agents/x")
    assert isinstance(err, VaultRequestFailed)
    assert err.status == 429
    assert str(err) == "read agents/x: Vault answered 429: slow down"
    with pytest.raises(TypeError):
        translate(KeyError("x"), "read", "agents/x")
