"""KV v2 through the client against a real OpenBao: what is written is what is read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr

from runtime.secrets import SecretNotFound, SecretsClient, VaultRequestFailed


def test_write_then_read_returns_the_values_and_version(admin: SecretsClient, folder: str) -> None:
    path = f"{folder}/openai"
    assert admin.write(path, {"api_key": "sk-one", "org": "acme"}) == 1
    assert admin.write(path, {"api_key": SecretStr("sk-two"), "org": "acme"}) == 2

    current = admin.read(path)
    assert current.version == 2
    assert current.value("api_key") == "sk-two"
    assert current.path == f"agents/{path}"
    first = admin.read(path, version=1)
    assert (first.version, first.value("api_key"), first.value("org")) == (1, "sk-one", "acme")
    assert first.created_time <= current.created_time


def test_a_read_version_prints_no_value(admin: SecretsClient, folder: str) -> None:
    admin.write(f"{folder}/x", {"api_key": "sk-visible-only-on-purpose"})
    secret = admin.read(f"{folder}/x")
    assert "sk-visible-only-on-purpose" not in repr(secret)
    assert "sk-visible-only-on-purpose" not in str(secret.data)


def test_list_names_secrets_and_sub_folders(admin: SecretsClient, folder: str) -> None:
    admin.write(f"{folder}/a", {"k": "1"})
    admin.write(f"{folder}/b", {"k": "2"})
    admin.write(f"{folder}/nested/c", {"k": "3"})
    assert admin.list(folder) == ["a", "b", "nested/"]
    assert admin.list(f"{folder}/nested") == ["c"]


def test_metadata_lists_versions_with_their_creation(admin: SecretsClient, folder: str) -> None:
    path = f"{folder}/meta"
    for n in range(3):
        admin.write(path, {"k": str(n)})
    meta = admin.metadata(path)
    assert (meta.current_version, meta.oldest_version) == (3, 0)
    assert sorted(meta.versions) == [1, 2, 3]
    times = [meta.versions[v].created_time for v in (1, 2, 3)]
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert all(v.live for v in meta.versions.values())
    assert meta.updated_time == times[-1]


@pytest.mark.parametrize("operation", ["read", "list", "metadata"])
def test_a_missing_path_is_an_error_not_an_empty_result(
    admin: SecretsClient, folder: str, operation: str
) -> None:
    with pytest.raises(SecretNotFound) as caught:
        getattr(admin, operation)(f"{folder}/absent")
    assert caught.value.path == f"agents/{folder}/absent"
    assert caught.value.operation == operation
    assert f"{operation} agents/{folder}/absent" in str(caught.value)


def test_a_missing_version_is_an_error(admin: SecretsClient, folder: str) -> None:
    admin.write(f"{folder}/v", {"k": "1"})
    with pytest.raises(SecretNotFound):
        admin.read(f"{folder}/v", version=7)


def test_check_and_set_refuses_a_stale_write(admin: SecretsClient, folder: str) -> None:
    path = f"{folder}/cas"
    assert admin.write(path, {"k": "1"}, cas=0) == 1
    with pytest.raises(VaultRequestFailed) as caught:
        admin.write(path, {"k": "2"}, cas=0)
    assert caught.value.status == 400
    assert "check-and-set" in str(caught.value)
    assert admin.read(path).value("k") == "1"


def test_paths_that_escape_the_folder_are_refused_before_any_request(admin: SecretsClient) -> None:
    for bad in ("", "/", "pools/../platform/redis", "pools//x"):
        with pytest.raises(ValueError, match="not a secret path"):
            admin.read(bad)
