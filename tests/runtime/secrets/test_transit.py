"""Application data encrypted by Vault's transit engine, not by code of ours."""

from __future__ import annotations

import base64

import pytest

from runtime.secrets import PermissionDenied, SecretsClient, VaultRequestFailed
from tests.runtime.secrets.bao import TRANSIT_KEY, MakeClient, root_hvac
from tests.runtime.secrets.policies import narrow_token
from tests.servers import BaoServer


def test_encrypt_then_decrypt_round_trips(admin: SecretsClient) -> None:
    plaintext = b"customer transcript \x00\xff with binary"
    ciphertext = admin.encrypt(TRANSIT_KEY, plaintext)
    assert ciphertext.startswith("vault:v1:")
    assert base64.b64encode(plaintext).decode() not in ciphertext
    assert admin.encrypt(TRANSIT_KEY, plaintext) != ciphertext  # a fresh nonce each time
    assert admin.decrypt(TRANSIT_KEY, ciphertext) == plaintext


def test_a_derived_key_needs_the_same_context(bao: BaoServer, admin: SecretsClient) -> None:
    root_hvac(bao).secrets.transit.create_key("per-tenant", derived=True, mount_point="transit")
    ciphertext = admin.encrypt("per-tenant", b"tenant data", context=b"tenant-a")
    assert admin.decrypt("per-tenant", ciphertext, context=b"tenant-a") == b"tenant data"
    with pytest.raises(VaultRequestFailed) as caught:
        admin.decrypt("per-tenant", ciphertext, context=b"tenant-b")
    assert caught.value.status == 400
    assert caught.value.path == "transit/decrypt/per-tenant"


def test_a_rotated_transit_key_still_decrypts_old_ciphertext(
    bao: BaoServer, admin: SecretsClient
) -> None:
    root_hvac(bao).secrets.transit.create_key("rotating", mount_point="transit")
    old = admin.encrypt("rotating", b"before")
    root_hvac(bao).secrets.transit.rotate_key("rotating", mount_point="transit")
    new = admin.encrypt("rotating", b"after")
    assert (old[:9], new[:9]) == ("vault:v1:", "vault:v2:")
    assert admin.decrypt("rotating", old) == b"before"


def test_transit_without_the_policy_is_denied(bao: BaoServer, make_client: MakeClient) -> None:
    token = narrow_token(bao, 'path "transit/encrypt/other" { capabilities = ["update"] }')
    client = make_client(token=token)
    with pytest.raises(PermissionDenied, match=f"encrypt transit/encrypt/{TRANSIT_KEY}"):
        client.encrypt(TRANSIT_KEY, b"x")


def test_garbage_ciphertext_is_refused_by_vault(admin: SecretsClient) -> None:
    with pytest.raises(VaultRequestFailed) as caught:
        admin.decrypt(TRANSIT_KEY, "vault:v1:bm90IGEgY2lwaGVydGV4dA==")
    assert caught.value.status == 400
