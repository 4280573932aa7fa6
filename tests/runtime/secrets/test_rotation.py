"""Rotation keeps the superseded version for the grace period; the destroy step removes it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtime.secrets import (
    SecretNotFound,
    SecretsClient,
    VaultRequestFailed,
    destroy_superseded,
    destroy_superseded_under,
    rotate_api_keys,
)
from runtime.secrets.rotation import superseded_past_grace
from tests.runtime.secrets.bao import FakeClock

GRACE = timedelta(hours=24)


def test_first_rotation_creates_the_secret(admin: SecretsClient, folder: str) -> None:
    rotated = rotate_api_keys(admin, f"{folder}/coder", ["api_key"])
    assert rotated.previous_version is None
    assert rotated.secret.version == 1
    key = rotated.secret.value("api_key")
    assert len(key) >= 43  # 32 random bytes, base64url
    assert admin.read(f"{folder}/coder").value("api_key") == key


def test_rotation_writes_a_new_version_and_keeps_the_old_one_readable(
    admin: SecretsClient, folder: str
) -> None:
    path = f"{folder}/coder"
    admin.write(path, {"api_key": "old-key", "provider": "openai"})
    rotated = rotate_api_keys(admin, path, ["api_key"])

    assert (rotated.previous_version, rotated.secret.version) == (1, 2)
    new = admin.read(path)
    assert new.version == 2
    assert new.value("api_key") not in ("old-key", "")
    assert new.value("provider") == "openai"  # fields not rotated are carried over
    assert admin.read(path, version=1).value("api_key") == "old-key"


def test_each_rotation_draws_a_different_key(admin: SecretsClient, folder: str) -> None:
    path = f"{folder}/keys"
    seen = {
        rotate_api_keys(admin, path, ["a", "b"]).secret.value(k) for _ in range(3) for k in "ab"
    }
    assert len(seen) == 6


def test_destroy_keeps_superseded_versions_until_the_grace_period_ends(
    admin: SecretsClient, folder: str, clock: FakeClock
) -> None:
    path = f"{folder}/coder"
    admin.write(path, {"api_key": "old-key"})
    rotate_api_keys(admin, path, ["api_key"])

    clock.advance(GRACE - timedelta(minutes=1))
    assert destroy_superseded(admin, path, GRACE) == []
    assert admin.read(path, version=1).value("api_key") == "old-key"

    clock.advance(timedelta(minutes=2))
    assert destroy_superseded(admin, path, GRACE) == [1]
    with pytest.raises(SecretNotFound):
        admin.read(path, version=1)
    meta = admin.metadata(path)
    assert meta.versions[1].destroyed and not meta.versions[2].destroyed
    assert admin.read(path).version == 2
    # Running the step again finds nothing left to do.
    assert destroy_superseded(admin, path, GRACE) == []


def test_grace_runs_from_the_successor_not_from_the_version_itself(
    admin: SecretsClient, folder: str, clock: FakeClock
) -> None:
    path = f"{folder}/grace"
    admin.write(path, {"api_key": "v1"})
    admin.write(path, {"api_key": "v2"})
    admin.write(path, {"api_key": "v3"})
    meta = admin.metadata(path)
    v3_written = meta.versions[3].created_time
    v2_written = meta.versions[2].created_time
    # Pretend v2 and v3 were written apart: judge at v2's write + grace, before v3's + grace.
    assert superseded_past_grace(meta, GRACE, v2_written + GRACE) == [1]
    assert superseded_past_grace(meta, GRACE, v3_written + GRACE) == [1, 2]
    assert superseded_past_grace(meta, GRACE, v2_written) == []


def test_destroy_under_a_folder_walks_sub_folders(
    admin: SecretsClient, folder: str, clock: FakeClock
) -> None:
    for path in (f"{folder}/a", f"{folder}/team/b"):
        admin.write(path, {"api_key": "first"})
        rotate_api_keys(admin, path, ["api_key"])
    admin.write(f"{folder}/single", {"api_key": "only"})
    clock.advance(GRACE + timedelta(seconds=1))
    assert destroy_superseded_under(admin, folder, GRACE) == {
        f"{folder}/a": [1],
        f"{folder}/team/b": [1],
    }
    assert admin.read(f"{folder}/single").value("api_key") == "only"


def test_a_write_based_on_a_version_a_rotation_replaced_is_refused(
    admin: SecretsClient, folder: str
) -> None:
    path = f"{folder}/race"
    admin.write(path, {"api_key": "v1"})
    # The other rotator reads v1, then this one writes v2 first.
    stale = admin.read(path)
    winner = rotate_api_keys(admin, path, ["api_key"])
    with pytest.raises(VaultRequestFailed, match="check-and-set"):
        admin.write(path, {"api_key": "loser"}, cas=stale.version)
    assert admin.read(path).value("api_key") == winner.secret.value("api_key")


def test_rotation_refuses_nothing_to_rotate_and_weak_keys(
    admin: SecretsClient, folder: str
) -> None:
    with pytest.raises(ValueError, match="at least one key"):
        rotate_api_keys(admin, f"{folder}/x", [])
    with pytest.raises(ValueError, match="16 bytes"):
        rotate_api_keys(admin, f"{folder}/x", ["k"], key_bytes=8)
