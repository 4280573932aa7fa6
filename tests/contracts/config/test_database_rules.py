"""`agentops:database`: each bad value is refused naming its key and what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from contracts.config import load_from_mapping
from contracts.config.errors import ConfigError
from tests.stacks import stack_values


def _set(stack: str, change: Callable[[dict[str, Any]], None]) -> None:
    values = stack_values(stack)
    change(values)
    load_from_mapping(values)


def _database(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda v: v["database"].update(fields)


@pytest.mark.parametrize(
    ("stack", "change", "expected"),
    [
        (
            "staging",
            _database(pools=["code-generator", "nope"]),
            r"agentops:database\.pools\[1\] = 'nope': must be one of "
            r"\['code-generator', 'security-scanner'\]",
        ),
        ("staging", _database(pools=[]), r"agentops:database\.pools = \[\]: name the pools"),
        (
            "staging",
            _database(pools=["code-generator", "code-generator"]),
            r"agentops:database\.pools .*each pool once",
        ),
        ("prod", _database(multiAz=False), r"agentops:database\.multiAz = False: prod runs"),
        (
            "staging",
            _database(engineVersion="14.1"),
            r"agentops:database\.engineVersion = '14\.1': pinned versions: 16\.4, 15\.8",
        ),
        ("staging", _database(credentials="iam"), r"agentops:database\.credentials"),
        ("staging", _database(storageGb=10), r"agentops:database\.storageGb"),
        ("staging", _database(backupRetentionDays=0), r"agentops:database\.backupRetentionDays"),
        (
            "staging",
            lambda v: v["vault"].update(configure=False),
            r"agentops:vault\.configure = False: the database's dynamic credentials",
        ),
        (
            "local",
            lambda v: v.update(database={"enabled": True, "pools": ["code-generator"]}),
            r"agentops:vault\.configure = False: the database's dynamic credentials",
        ),
    ],
    ids=[
        "unknown-pool",
        "no-pools",
        "pool-twice",
        "prod-single-az",
        "unpinned-engine",
        "iam-auth",
        "tiny-storage",
        "no-backups",
        "vault-unconfigured",
        "local-vault-unconfigured",
    ],
)
def test_a_bad_database_value_names_its_key(
    stack: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        _set(stack, change)


def test_the_committed_stacks_and_a_disabled_database_load() -> None:
    for stack in ("staging", "prod", "local"):
        _set(stack, lambda v: None)
    _set("staging", lambda v: v.update(database={"enabled": False}))
    # A typo is a typo even while the database is off.
    with pytest.raises(ConfigError, match=r"agentops:database\.pools\[0\] = 'nope'"):
        _set("staging", lambda v: v.update(database={"enabled": False, "pools": ["nope"]}))
