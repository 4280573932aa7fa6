"""`AGENTOPS_VAULT_*` settings: defaults match the Deployments, the token never shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.settings.vault import VaultSettings as Settings
from runtime.secrets import KubernetesLogin, StaticToken, VaultSettings, login_from_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POD_NAME", "HOSTNAME"):
        monkeypatch.delenv(name, raising=False)


def test_a_pod_logs_in_with_its_projected_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_VAULT_ROLE", "manager")
    monkeypatch.setenv("HOSTNAME", "manager-5c7d-x2x9z")
    settings = VaultSettings()
    assert settings.url == "https://vault.vault.svc:8200"
    assert settings.token_file == Path("/var/run/secrets/vault/token")
    assert (settings.auth_mount, settings.kv_mount) == ("kubernetes", "agents")
    assert settings.pod_name == "manager-5c7d-x2x9z"
    login = login_from_settings(settings)
    assert isinstance(login, KubernetesLogin)
    assert (login.role, login.token_file, login.mount) == (
        "manager",
        Path("/var/run/secrets/vault/token"),
        "kubernetes",
    )


def test_pod_name_beats_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_VAULT_ROLE", "manager")
    monkeypatch.setenv("HOSTNAME", "host")
    monkeypatch.setenv("POD_NAME", "pod")
    assert VaultSettings().pod_name == "pod"


def test_a_static_token_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOPS_VAULT_TOKEN", "hvs.very-secret-token")
    monkeypatch.setenv("AGENTOPS_VAULT_ADDRESS", "http://127.0.0.1:8200/")
    settings = VaultSettings()
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)
    assert "very-secret" not in settings.model_dump_json()
    assert settings.url == "http://127.0.0.1:8200"
    assert isinstance(login_from_settings(settings), StaticToken)


def test_a_way_to_log_in_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTOPS_VAULT_ROLE", raising=False)
    monkeypatch.delenv("AGENTOPS_VAULT_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="AGENTOPS_VAULT_ROLE"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("ROLE", "Not A Role"), ("KV_MOUNT", "../x"), ("RENEW_MARGIN_S", "0"), ("ADDRESS", "vault")],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("AGENTOPS_VAULT_TOKEN", "t")
    monkeypatch.setenv(f"AGENTOPS_VAULT_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        VaultSettings()
