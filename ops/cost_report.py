"""Terminal and chart rendering of cost figures: rich tables and a matplotlib PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Group
from rich.table import Table

from contracts.prices import PriceRow
from runtime.cost.schemas import ReportOut

__all__ = ["price_table", "spend_chart", "spend_report"]


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


def _usd(value: object) -> str:
    return f"{value:,.2f}" if value is not None else "-"


def spend_report(report: ReportOut) -> Group:
    summary = Table(title=f"Spend analysis as of {report.as_of.isoformat()} (USD)")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    for name, value in (
        (f"total over {len(report.series)} days", _usd(report.total_usd)),
        ("daily average", _usd(report.daily_average_usd)),
        ("trend (last 7 days, per day)", f"{report.trend_usd_per_day:+,.4f}"),
        ("month to date", _usd(report.month_to_date_usd)),
        ("projected month end", _usd(report.projected_month_end_usd)),
        ("monthly budget", _usd(report.monthly_budget_usd)),
        ("burn rate", f"{report.burn_rate * 100:.1f} %"),
    ):
        summary.add_row(name, value)
    models = Table(title="Spend this month per model (USD)")
    models.add_column("model")
    models.add_column("spend", justify="right")
    models.add_column("share", justify="right")
    month = sum(report.by_model.values())
    for model, usd in sorted(report.by_model.items(), key=lambda kv: -kv[1]):
        models.add_row(model, _usd(usd), f"{usd / month * 100:.1f} %" if month else "-")
    ideas = Table(title="Suggestions")
    ideas.add_column("priority")
    ideas.add_column("suggestion")
    ideas.add_column("action")
    ideas.add_column("potential savings", justify="right")
    for s in report.suggestions:
        ideas.add_row(s.priority, s.description, s.action, _usd(s.potential_savings_usd))
    return Group(summary, models, ideas)


def spend_chart(report: ReportOut, path: Path) -> None:
    """A PNG of daily spend as bars against the daily budget as a line."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to the file
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num

    days = date2num([d.date for d in report.series])  # type: ignore[no-untyped-call]
    figure, axes = plt.subplots(figsize=(10, 4.5), layout="constrained")
    axes.bar(days, [float(d.spend_usd) for d in report.series], label="daily spend")
    axes.plot(
        days,
        [float(d.budget_usd) for d in report.series],
        color="tab:red",
        linestyle="--",
        label="daily budget",
    )
    axes.xaxis_date()
    axes.set_ylabel("USD")
    axes.set_title(f"Daily spend to {report.as_of.isoformat()} against the daily budget")
    axes.legend()
    figure.autofmt_xdate()
    figure.savefig(path, dpi=100)
    plt.close(figure)
