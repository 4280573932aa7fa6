"""Money in the cost engine: integer nano-dollars (1e-9 USD), exact for every price quoted per
million tokens with up to three decimals. A cost finer than that is refused, never rounded."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["NANO", "from_nano", "to_nano"]

NANO = Decimal("1e9")


def to_nano(usd: Decimal) -> int:
    scaled = usd * NANO
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{usd} USD is finer than the ledger's nano-dollar resolution")
    return int(scaled)


def from_nano(nano: int) -> Decimal:
    return Decimal(nano) / NANO
