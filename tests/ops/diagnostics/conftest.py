"""Shared by the diagnostics tests: the stacks' expectations and doctor settings for servers
that scrape every second (rates over a short window instead of the production 5m)."""

from __future__ import annotations

import pytest

from contracts.config import load_from_mapping
from ops.diagnostics import DoctorSettings
from ops.diagnostics.platform import PlatformExpectations, expectations
from tests.conftest import stack_values

# Rates need two samples in their window: with a 1 s scrape, 20 s holds plenty.
QUERY_WINDOW = "20s"
# Redis memory growth: two INFO samples this far apart (production: 10 s).
REDIS_GROWTH_SAMPLE_S = 1


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
