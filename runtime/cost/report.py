"""Terminal rendering of cost figures (rich tables)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from runtime.cost.prices import PriceRow

__all__ = ["price_table"]


def price_table(rows: Sequence[PriceRow]) -> Table:
    table = Table(title="Effective model prices (USD)")
    table.add_column("model")
    table.add_column("provider")
    table.add_column("input / 1K tokens", justify="right")
    table.add_column("output / 1K tokens", justify="right")
    table.add_column("source")
    for row in rows:
        table.add_row(
            row.model,
            row.provider or "-",
            f"{row.input_per_1k.normalize():f}",
            f"{row.output_per_1k.normalize():f}",
            row.source,
        )
    return table
