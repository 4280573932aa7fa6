"""Every access leaves an audit record; no record, log line or error holds a secret value."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.telemetry.logs import AUDIT_FIELD, AuditEvent
from runtime.secrets import (
    AuditTrail,
    LogAudit,
    PermissionDenied,
    RecentAudit,
    SecretNotFound,
    destroy_superseded,
    rotate_api_keys,
)
from runtime.secrets.audit import LOGGER_NAME
from runtime.service.logs import json_formatter
from tests.runtime.secrets.bao import TRANSIT_KEY, FakeClock, MakeClient
from tests.runtime.secrets.policies import narrow_token
from tests.servers import BaoServer


def test_every_access_is_recorded_and_no_value_is_anywhere(
    bao: BaoServer,
    make_client: MakeClient,
    recent: RecentAudit,
    clock: FakeClock,
    folder: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    client = make_client(audit=AuditTrail([LogAudit(), recent]))
    path = f"{folder}/coder"
    written = "sk-initial-0123456789abcdef"
    plaintext = b"plaintext-that-must-stay-private"

    client.write(path, {"api_key": written})
    rotated = rotate_api_keys(client, path, ["api_key"])
    generated = rotated.secret.value("api_key")
    client.list(folder)
    clock.advance(timedelta(days=2))
    destroy_superseded(client, path, timedelta(days=1))
    ciphertext = client.encrypt(TRANSIT_KEY, plaintext)
    assert client.decrypt(TRANSIT_KEY, ciphertext) == plaintext
    with pytest.raises(SecretNotFound) as missing:
        client.read(f"{folder}/absent")

    records = recent.records()
    assert [(r.operation, r.outcome) for r in records] == [
        ("login", "ok"),
        ("write", "ok"),
        ("read", "ok"),  # rotation: current version
        ("write", "ok"),  # rotation: new version
        ("read", "ok"),  # rotation: the version written
        ("list", "ok"),
        ("metadata", "ok"),
        ("destroy", "ok"),
        ("encrypt", "ok"),
        ("decrypt", "ok"),
        ("read", "not-found"),
    ]
    assert [r.version for r in records[1:5]] == [1, 1, 2, 2]
    assert records[7].version == 1 and records[7].path == f"agents/{path}"
    assert records[8].path == f"transit/encrypt/{TRANSIT_KEY}"
    assert records[-1].error == str(missing.value)
    assert all(r.pod == "manager-7d9f-abcde" for r in records)
    assert all(r.actor.display_name == "token" and r.actor.policies == ("root",) for r in records)
    assert records[-1].at - records[0].at == timedelta(days=2)  # times come from the clock

    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert [json.loads(line)["operation"] for line in lines] == [r.operation for r in records]
    assert json.loads(lines[-1]) == records[-1].as_dict()
    assert caplog.records[-1].levelno == logging.WARNING  # failures stand out
    # Each record's line, as the runtime's JSON formatter writes it, carries the audit marker
    # the log shipper routes to the audit log group.
    shipped = [
        json.loads(json_formatter().format(r)) for r in caplog.records if r.name == LOGGER_NAME
    ]
    assert {line[AUDIT_FIELD] for line in shipped} == {AuditEvent.SECRET_ACCESS.value}

    everything = "\n".join([caplog.text, *lines, *(repr(r) for r in records)])
    for value in (written, generated, plaintext.decode(), ciphertext):
        assert value not in everything


def test_a_denied_access_records_who_was_denied(
    bao: BaoServer, make_client: MakeClient, recent: RecentAudit, folder: str
) -> None:
    token = narrow_token(
        bao,
        'path "agents/data/elsewhere" { capabilities = ["read"] }',
        display_name="coder-pool",
        meta={"purpose": "test"},
    )
    client = make_client(token=token)
    with pytest.raises(PermissionDenied):
        client.read(f"{folder}/x")
    record = recent.records()[-1]
    assert (record.operation, record.outcome) == ("read", "denied")
    assert record.actor.display_name == "token-coder-pool"
    assert "default" in record.actor.policies and len(record.actor.policies) == 2
    assert record.error == f"read agents/{folder}/x: permission denied by the token's policies"


def test_a_failed_login_is_recorded_with_the_role_it_tried(
    make_client: MakeClient, recent: RecentAudit, tmp_path: Path
) -> None:
    from runtime.secrets import KubernetesLogin, LoginFailed

    client = make_client(login=KubernetesLogin("manager", tmp_path / "absent"))
    with pytest.raises(LoginFailed):
        client.read("platform/manager/api")
    login, read = recent.records()[-2:]
    assert (login.operation, login.outcome, login.actor.role) == (
        "login",
        "login-failed",
        "manager",
    )
    assert (read.operation, read.outcome) == ("read", "login-failed")


def test_the_recent_list_is_bounded() -> None:
    from datetime import UTC, datetime

    from runtime.secrets import Actor, AuditRecord

    recent = RecentAudit(capacity=3)
    for n in range(5):
        recent.emit(AuditRecord(datetime.now(UTC), Actor(), None, "read", f"agents/{n}", "ok"))
    assert [r.path for r in recent.records()] == ["agents/2", "agents/3", "agents/4"]
    with pytest.raises(ValueError, match="capacity"):
        RecentAudit(capacity=0)
