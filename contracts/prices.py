"""Model prices: the maintained `genai-prices` database, with operator overrides on top.

Money is `Decimal` throughout. A model the book cannot price is an error, never zero cost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version

from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot

__all__ = ["PriceBook", "PriceOverride", "PriceRow", "PricedModel", "UnknownModelError"]

_THOUSAND = 1000
_COMPUTED_KEPT = 4096  # prices kept per (model, price list, usage): the maxima repeat
DATABASE = f"genai-prices {version('genai-prices')}"


class UnknownModelError(LookupError):
    """A model nobody configured, or one the price database does not know."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        super().__init__(f"cannot price model {model!r}: {reason}")


@dataclass(frozen=True)
class PricedModel:
    """A model the platform may use, and the provider whose price list applies."""

    model: str
    provider: str | None = None


@dataclass(frozen=True)
class PriceOverride:
    """A negotiated or private price in USD per 1,000 tokens, from a date on."""

    model: str
    input_per_1k: Decimal
    output_per_1k: Decimal
    effective_from: dt.date

    def __post_init__(self) -> None:
        if self.input_per_1k < 0 or self.output_per_1k < 0:
            raise ValueError(f"{self.model}: prices cannot be negative")


@dataclass(frozen=True)
class PriceRow:
    model: str
    provider: str | None
    input_per_1k: Decimal
    output_per_1k: Decimal
    source: str


class PriceBook:
    def __init__(
        self, models: Sequence[PricedModel], overrides: Sequence[PriceOverride] = ()
    ) -> None:
        self._models = {m.model: m for m in models}
        # (model, provider, id of the price list in force, tokens) → (that list, cost): the
        # entry holds the list, so its id cannot be reused by another while the entry exists.
        self._computed: dict[tuple[str, str | None, int, int, int], tuple[object, Decimal]] = {}
        self._overrides: dict[str, list[PriceOverride]] = {}
        for o in sorted(overrides, key=lambda o: o.effective_from):
            self._overrides.setdefault(o.model, []).append(o)
        # Every configured model must resolve now, not at the first call that uses it.
        for name in self._models:
            self.cost(name, 1, 1)

    @property
    def models(self) -> list[str]:
        return sorted(self._models)

    def _override(self, model: str, at: dt.datetime) -> PriceOverride | None:
        current = None
        for o in self._overrides.get(model, []):
            if o.effective_from <= at.date():
                current = o
        return current

    def cost(
        self, model: str, input_tokens: int, output_tokens: int, at: dt.datetime | None = None
    ) -> Decimal:
        """Exact USD cost of one call."""
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError("token counts cannot be negative")
        at = at or dt.datetime.now(dt.UTC)
        if model not in self._models:
            raise UnknownModelError(
                model, f"not a configured model (configured: {', '.join(self.models)})"
            )
        override = self._override(model, at)
        if override is not None:
            return (
                override.input_per_1k * input_tokens + override.output_per_1k * output_tokens
            ) / _THOUSAND
        provider = self._models[model].provider
        try:
            # The database's price calculation takes about a millisecond; its result depends
            # only on the price list in force at `at` and the usage, so it is kept per both.
            _, info = get_snapshot().find_provider_model(model, None, provider, None)
            prices = info.get_prices(at)
            key = (model, provider, id(prices), input_tokens, output_tokens)
            kept = self._computed.get(key)
            if kept is not None and kept[0] is prices:
                return kept[1]
            calc = calc_price(
                Usage(input_tokens=input_tokens, output_tokens=output_tokens),
                model,
                provider_id=provider,
                genai_request_timestamp=at,
            )
            cost = Decimal(calc.total_price)
            self._computed[key] = (prices, cost)
            if len(self._computed) > _COMPUTED_KEPT:
                del self._computed[next(iter(self._computed))]  # the oldest entry
        except LookupError as err:
            raise UnknownModelError(
                model,
                f"{DATABASE} has no price for it from {provider or 'any provider'}; "
                "add a price override",
            ) from err
        return cost

    def table(self, at: dt.datetime | None = None) -> list[PriceRow]:
        """The effective price of every model and where it comes from."""
        at = at or dt.datetime.now(dt.UTC)
        rows = []
        for name in self.models:
            override = self._override(name, at)
            source = (
                f"override from {override.effective_from.isoformat()}" if override else DATABASE
            )
            rows.append(
                PriceRow(
                    model=name,
                    provider=self._models[name].provider,
                    input_per_1k=self.cost(name, _THOUSAND, 0, at),
                    output_per_1k=self.cost(name, 0, _THOUSAND, at),
                    source=source,
                )
            )
        return rows
