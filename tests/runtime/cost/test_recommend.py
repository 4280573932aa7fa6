"""Model recommendation, table-driven: the seed's scoring with its config weights."""

from __future__ import annotations

from decimal import Decimal

import pytest

from contracts.config.cost import CostConfig, ModelProfile
from contracts.settings.cost import price_book
from runtime.cost.recommend import NoModelFits, Task, estimate_tokens, recommend

COST = CostConfig.model_validate({"budget": {"dailyUsd": "10", "monthlyUsd": "100"}})
BOOK = price_book(COST)
WEIGHTS = COST.recommendation


def price(model: str, tokens_in: int, tokens_out: int) -> Decimal:
    return BOOK.cost(model, tokens_in, tokens_out)


def seed_score(model: str, task: Task) -> float:
    """The seed article's formula, written out independently of the engine."""
    p = COST.models[model]
    tokens_in, tokens_out = estimate_tokens(task, p, WEIGHTS)
    cost = float(price(model, tokens_in, tokens_out))
    quality_weight = task.quality_priority * (0.5 + task.complexity)
    return (
        p.quality * quality_weight
        + p.speed * task.speed_priority
        + (1 / (1 + cost)) * (1 - task.quality_priority - task.speed_priority)
    )


@pytest.mark.parametrize(
    ("task_type", "complexity", "expected_in", "expected_out", "model"),
    [
        # base × (0.5 + complexity × 1.5) × token efficiency, rounded down
        ("code_generation", 0.5, 625, 2500, "gpt-5"),
        ("code_generation", 0.5, 687, 2750, "gpt-4o"),  # efficiency 1.1
        ("security_analysis", 1.0, 1800, 2700, "claude-opus-4-5"),  # efficiency 0.9
        ("general", 0.0, 150, 400, "claude-sonnet-4-5"),
        ("unknown-kind", 0.0, 150, 400, "gpt-5"),  # falls back to 'general'
    ],
)
def test_token_estimates(
    task_type: str, complexity: float, expected_in: int, expected_out: int, model: str
) -> None:
    task = Task(task_type, complexity, 0.7, 0.3)
    assert estimate_tokens(task, COST.models[model], WEIGHTS) == (expected_in, expected_out)


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        # Quality-led tasks: the best quality wins (gpt-5 0.95).
        (Task("code_generation", 0.9, 0.9, 0.1), "gpt-5"),
        # Speed-led: gpt-4o has the best speed (0.9).
        (Task("general", 0.1, 0.0, 1.0), "gpt-4o"),
        # A budget that only the cheaper models fit excludes the expensive ones.
        (Task("code_generation", 0.5, 0.7, 0.3, Decimal("0.03")), None),
    ],
)
def test_ranking_follows_the_seed_scores(task: Task, expected: str | None) -> None:
    answer = recommend(task, COST.models, price, WEIGHTS)
    scores = {m: seed_score(m, task) for m in COST.models}
    fitting = {
        m: s
        for m, s in scores.items()
        if task.budget_usd is None
        or price(m, *estimate_tokens(task, COST.models[m], WEIGHTS)) <= task.budget_usd
    }
    best = max(fitting, key=lambda m: fitting[m])
    assert answer.model == best
    if expected is not None:
        assert answer.model == expected
    assert [c.model for c in answer.ranked] == sorted(fitting, key=lambda m: -fitting[m])
    for c in answer.ranked:
        assert c.score == pytest.approx(scores[c.model])
    assert set(answer.excluded) == set(COST.models) - set(fitting)
    assert answer.model in answer.reasoning


def test_budget_excludes_some_and_says_so() -> None:
    task = Task("code_generation", 0.5, 0.7, 0.3, Decimal("0.03"))
    costs = {m: price(m, *estimate_tokens(task, COST.models[m], WEIGHTS)) for m in COST.models}
    answer = recommend(task, COST.models, price, WEIGHTS)
    assert answer.excluded == {m: c for m, c in costs.items() if c > Decimal("0.03")}
    assert answer.excluded, "the fixture's budget must exclude at least one model"
    assert all(c.estimated_cost_usd <= Decimal("0.03") for c in answer.ranked)


def test_budget_that_excludes_every_model_is_a_clear_error() -> None:
    task = Task("security_analysis", 1.0, 0.7, 0.3, Decimal("0.000001"))
    costs = {m: price(m, *estimate_tokens(task, COST.models[m], WEIGHTS)) for m in COST.models}
    cheapest = min(costs, key=lambda m: costs[m])
    with pytest.raises(NoModelFits, match=r"no model fits the budget of 0\.000001 USD") as info:
        recommend(task, COST.models, price, WEIGHTS)
    assert info.value.cheapest == cheapest
    assert info.value.cheapest_cost == costs[cheapest]


@pytest.mark.parametrize(
    ("task", "winner", "downgraded_to"),
    [
        (Task("code_generation", 0.9, 0.9, 0.1), "gpt-5", "gpt-5-mini"),
        (Task("general", 0.1, 0.0, 1.0), "gpt-4o", None),  # gpt-4o has no downgrade
    ],
)
def test_downgrade_path(task: Task, winner: str, downgraded_to: str | None) -> None:
    answer = recommend(
        task, COST.models, price, WEIGHTS, downgrade=COST.downgrade, downgrade_reason="90 %"
    )
    if downgraded_to is None:
        assert (answer.model, answer.downgraded_from) == (winner, None)
    else:
        assert (answer.model, answer.downgraded_from) == (downgraded_to, winner)
        assert answer.notes == [f"downgraded {winner} → {downgraded_to}: 90 %"]


def test_downgrade_target_over_the_task_budget_keeps_the_winner() -> None:
    profiles = {
        "gpt-5": COST.models["gpt-5"],
        # A profile that makes gpt-4o spend far more tokens than gpt-5.
        "gpt-4o": ModelProfile(provider="openai", quality=0.9, speed=0.9, token_efficiency=5),
    }
    task = Task("general", 0.0, 1.0, 0.0)
    gpt5 = price("gpt-5", *estimate_tokens(task, profiles["gpt-5"], WEIGHTS))
    answer = recommend(
        Task("general", 0.0, 1.0, 0.0, gpt5),
        profiles,
        price,
        WEIGHTS,
        downgrade={"gpt-5": "gpt-4o"},
        downgrade_reason="over",
    )
    assert answer.model == "gpt-5"
    assert answer.downgraded_from is None
    assert "skipped" in answer.notes[0]
