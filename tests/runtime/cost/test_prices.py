"""Prices: exactly genai-prices' own figures, overrides win from their date, unknowns refused."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from contracts.config.cost import CostConfig
from contracts.prices import PriceBook, PricedModel, PriceOverride, UnknownModelError
from tests.stacks import REPO, write_stack

_COST = CostConfig.model_validate({"budget": {"dailyUsd": "1", "monthlyUsd": "1"}})
DEFAULTS = [PricedModel(name, profile.provider) for name, profile in _COST.models.items()]
AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("model", DEFAULTS, ids=lambda m: m.model)
def test_default_prices_match_genai_prices_to_the_last_digit(model: PricedModel) -> None:
    book = PriceBook(DEFAULTS)
    for usage in ((12_345, 6_789), (1, 0), (0, 1), (1_000_000, 250_000)):
        expected = calc_price(
            Usage(input_tokens=usage[0], output_tokens=usage[1]),
            model.model,
            provider_id=model.provider,
            genai_request_timestamp=AT,
        ).total_price
        assert book.cost(model.model, *usage, at=AT) == expected
        assert isinstance(book.cost(model.model, *usage, at=AT), Decimal)


def test_the_seed_prices_are_not_used() -> None:
    book = PriceBook(DEFAULTS)
    # The operations guide's table said gpt-5 costs $0.002 / $0.006 per 1K tokens.
    assert book.cost("gpt-5", 1000, 1000, at=AT) != Decimal("0.008")


def test_override_wins_from_its_date_and_is_reported() -> None:
    override = PriceOverride("gpt-4o", Decimal("0.001"), Decimal("0.004"), dt.date(2026, 6, 1))
    book = PriceBook(DEFAULTS, [override])
    before = dt.datetime(2026, 5, 31, tzinfo=dt.UTC)
    assert book.cost("gpt-4o", 1000, 1000, at=AT) == Decimal("0.005")
    assert book.cost("gpt-4o", 1000, 1000, at=before) == PriceBook(DEFAULTS).cost(
        "gpt-4o", 1000, 1000, at=before
    )
    rows = {r.model: r for r in book.table(at=AT)}
    assert rows["gpt-4o"].source == "override from 2026-06-01"
    assert rows["gpt-4o"].input_per_1k == Decimal("0.001")
    assert rows["gpt-5"].source.startswith("genai-prices ")


def test_private_model_needs_an_override() -> None:
    private = PricedModel("acme-coder-ft", None)
    with pytest.raises(UnknownModelError, match="has no price for it from any provider"):
        PriceBook([*DEFAULTS, private])
    book = PriceBook(
        [*DEFAULTS, private],
        [PriceOverride("acme-coder-ft", Decimal("0.0004"), Decimal("0.0016"), dt.date(2026, 1, 1))],
    )
    assert book.cost("acme-coder-ft", 2000, 500, at=AT) == Decimal("0.0016")


def test_unknown_model_in_usage_is_an_error_not_zero() -> None:
    book = PriceBook(DEFAULTS)
    with pytest.raises(
        UnknownModelError, match="'gpt-9' : not a configured model".replace(" :", ":")
    ):
        book.cost("gpt-9", 10, 10)
    with pytest.raises(ValueError, match="negative"):
        book.cost("gpt-5", -1, 0)
    with pytest.raises(ValueError, match="cannot be negative"):
        PriceOverride("gpt-5", Decimal("-0.1"), Decimal(0), dt.date(2026, 1, 1))


def _prices(stack_dir: Path, stack: str = "staging") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.cli",
            "cost",
            "prices",
            "--stack",
            stack,
            "--stack-dir",
            str(stack_dir),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"COLUMNS": "200", "PATH": "/usr/bin"},
        check=False,
    )


def test_cli_prints_effective_table_with_sources(tmp_path: Path) -> None:
    def negotiated(config: dict[str, Any]) -> None:
        config["agentops:cost"]["priceOverrides"] = [
            {
                "model": "gpt-5",
                "inputPer1kUsd": "0.001",
                "outputPer1kUsd": "0.008",
                "effectiveFrom": "2026-01-01",
            }
        ]

    proc = _prices(write_stack(tmp_path, "staging", negotiated))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if "│" in line}
    assert "override from 2026-01-01" in lines["gpt-5"]
    assert "0.001" in lines["gpt-5"]
    assert "genai-prices" in lines["gpt-4o"]


def test_cli_refuses_unpriceable_model(tmp_path: Path) -> None:
    def private(config: dict[str, Any]) -> None:
        config["agentops:cost"]["models"] = {"acme-coder-ft": {"quality": 0.8, "speed": 0.9}}
        config["agentops:cost"]["downgrade"] = {}

    proc = _prices(write_stack(tmp_path, "staging", private))
    assert proc.returncode == 2
    assert "cannot price model 'acme-coder-ft'" in proc.stderr


@pytest.mark.parametrize(
    ("model", "provider", "moments"),
    [
        # A price change from a date on (2026-03-13), and prices by time of day.
        ("claude-opus-4-6", "anthropic", [(2026, 3, 12, 23), (2026, 3, 13, 0), (2026, 3, 12, 9)]),
        ("deepseek-chat", "deepseek", [(2026, 11, 1, h) for h in (0, 6, 12, 17, 18, 23, 0)]),
    ],
)
def test_kept_prices_follow_the_price_list_in_force(
    model: str, provider: str, moments: list[tuple[int, int, int, int]]
) -> None:
    # The book keeps what it computed (the database's calculation takes a millisecond): at
    # every moment, asked again or not, it still answers the price in force then.
    book = PriceBook([PricedModel(model, provider)])
    seen = set()
    for _ in range(2):
        for moment in moments:
            at = dt.datetime(*moment, tzinfo=dt.UTC)
            expected = calc_price(
                Usage(input_tokens=1_000_000, output_tokens=1_000_000),
                model,
                provider_id=provider,
                genai_request_timestamp=at,
            ).total_price
            assert book.cost(model, 1_000_000, 1_000_000, at=at) == expected
            seen.add(expected)
    assert len(seen) > 1  # the list did change over these moments
