"""The Vault probe against a real OpenBao dev server: seal status, secret ages against the
stack's rotation policy (by the probe's clock), missing rights, sealed and stopped servers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import hvac
import pytest

from ops.diagnostics import Check, DoctorSettings, Status
from ops.diagnostics.platform import PlatformExpectations
from ops.diagnostics.probes.vault import VaultAccess, vault_checks
from runtime.secrets.clock import utc_now
from tests.servers import BaoServer, bao_server


@pytest.fixture
def bao(tmp_path: Path, local_expect: PlatformExpectations) -> Iterator[BaoServer]:
    with bao_server(tmp_path / "bao") as server:
        root = hvac.Client(url=server.address, token=server.root_token)
        root.sys.enable_secrets_engine("kv", path=local_expect.kv_mount, options={"version": "2"})
        yield server


def _token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "vault-token"
    path.write_text(token + "\n")
    return path


def _write(server: BaoServer, mount: str, path: str) -> None:
    root = hvac.Client(url=server.address, token=server.root_token)
    root.secrets.kv.v2.create_or_update_secret(path, secret={"key": "v"}, mount_point=mount)


def _checks(
    server: BaoServer,
    tmp_path: Path,
    expect: PlatformExpectations,
    settings: DoctorSettings,
    at: datetime | None = None,
    token: str | None = None,
) -> dict[str, Check]:
    access = VaultAccess(server.address, _token_file(tmp_path, token or server.root_token))
    clock = (lambda: at) if at is not None else utc_now
    return {c.name: c for c in vault_checks(access, expect, settings, clock)}


def test_fresh_secrets_are_healthy_and_age_into_warning_then_critical(
    bao: BaoServer, tmp_path: Path, local_expect: PlatformExpectations, settings: DoctorSettings
) -> None:
    pool, redis = local_expect.secret_prefixes[-2], local_expect.secret_prefixes[-1]
    _write(bao, local_expect.kv_mount, f"{pool}/provider/api")
    _write(bao, local_expect.kv_mount, redis)  # a leaf, not a folder
    written = utc_now()

    now = _checks(bao, tmp_path, local_expect, settings)
    assert now["vault.seal"].status is Status.HEALTHY
    age = now["vault.secret_age"]
    assert age.status is Status.HEALTHY and "2 secrets" in age.detail
    assert isinstance(age.value, float) and age.value < 1

    max_age = local_expect.secret_max_age_days
    notice = settings.secret_rotation_notice_days
    due = _checks(bao, tmp_path, local_expect, settings, written + timedelta(days=max_age - notice))
    assert due["vault.secret_age"].status is Status.WARNING
    late = _checks(bao, tmp_path, local_expect, settings, written + timedelta(days=max_age + 1))
    overdue = late["vault.secret_age"]
    assert overdue.status is Status.CRITICAL
    assert f"{local_expect.kv_mount}/{pool}/provider/api" in overdue.detail
    assert f"{local_expect.kv_mount}/{redis}" in overdue.detail
    assert overdue.advice and "docs/operations.md" in overdue.advice


def test_without_credentials_ages_are_not_checked_but_said_so(
    bao: BaoServer, local_expect: PlatformExpectations, settings: DoctorSettings
) -> None:
    checks = {c.name: c for c in vault_checks(VaultAccess(bao.address), local_expect, settings)}
    assert checks["vault.seal"].status is Status.HEALTHY
    assert checks["vault.secret_age"].status is Status.WARNING
    assert "no Vault credentials" in checks["vault.secret_age"].detail


def test_a_token_without_the_rights_is_critical_with_vaults_refusal(
    bao: BaoServer, tmp_path: Path, local_expect: PlatformExpectations, settings: DoctorSettings
) -> None:
    _write(bao, local_expect.kv_mount, local_expect.secret_prefixes[-1])
    root = hvac.Client(url=bao.address, token=bao.root_token)
    weak = root.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    checks = _checks(bao, tmp_path, local_expect, settings, token=weak)
    assert checks["vault.secret_age"].status is Status.CRITICAL
    assert "permission denied" in checks["vault.secret_age"].detail.lower()


def test_sealed_and_stopped_vault_are_critical(
    bao: BaoServer, tmp_path: Path, local_expect: PlatformExpectations, settings: DoctorSettings
) -> None:
    assert bao.bao("operator", "seal").returncode == 0
    sealed = _checks(bao, tmp_path, local_expect, settings)
    assert (sealed["vault.seal"].status, sealed["vault.seal"].value) == (Status.CRITICAL, "sealed")
    assert "vault.secret_age" not in sealed  # nothing can be read from a sealed Vault
    bao.stop()
    gone = _checks(bao, tmp_path, local_expect, settings)
    assert gone["vault.seal"].status is Status.CRITICAL
    assert "Connection refused" in gone["vault.seal"].detail
