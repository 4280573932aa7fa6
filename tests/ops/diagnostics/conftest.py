"""Shared by the diagnostics tests: the stacks' expectations and doctor settings for servers
that scrape every second (rates over a short window instead of the production 5m)."""

from __future__ import annotations

import pytest

from contracts.config import load_from_mapping
from ops.diagnostics import DoctorSettings
from ops.diagnostics.platform import PlatformExpectations, expectations
from tests.ops.diagnostics.windows import QUERY_WINDOW, REDIS_GROWTH_SAMPLE_S
from tests.stacks import stack_values


@pytest.fixture(scope="session")
def local_expect() -> PlatformExpectations:
    return expectations(load_from_mapping(stack_values("local")))


@pytest.fixture(scope="session")
def staging_expect() -> PlatformExpectations:
    return expectations(load_from_mapping(stack_values("staging")))


@pytest.fixture
def settings() -> DoctorSettings:
    return DoctorSettings(
        query_window=QUERY_WINDOW, timeout_s=5, redis_growth_sample_s=REDIS_GROWTH_SAMPLE_S
    )
