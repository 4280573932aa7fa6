"""The `agentops` command line: one entry point for operators.

Infra commands import Pulumi lazily, so the runtime image never needs it installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.diagnostics.cli import doctor_command

if TYPE_CHECKING:
    from infra.config.cost import CostConfig
    from runtime.cost.api import ReportOut

app = typer.Typer(
    name="agentops",
    help="Operate the AI-agent platform: offline plans, diffs and the runtime services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("plan")
def plan_command(
    stacks: Annotated[
        list[str] | None, typer.Argument(help="stacks to plan (default: staging prod)")
    ] = None,
    out: Annotated[Path, typer.Option(help="directory for <stack>/plan.json + manifests/")] = Path(
        "plans"
    ),
    quiet: Annotated[bool, typer.Option(help="print only one line per stack")] = False,
    stack_dir: Annotated[
        Path | None, typer.Option(help="where Pulumi.yaml and Pulumi.<stack>.yaml live")
    ] = None,
) -> None:
    """Plan stacks offline under Pulumi's mock engine (no cloud credentials)."""
    from infra.plan.cli import plan

    plan(stacks, out, quiet, stack_dir)


# Typer reads the options from the function's signature; its body imports lazily.
app.command("doctor")(doctor_command)


@app.command("diff")
def diff_command(
    base: Annotated[Path, typer.Argument(help="base plan directory or plan.json")],
    head: Annotated[Path, typer.Argument(help="head plan directory or plan.json")],
    output: Annotated[Path | None, typer.Option(help="also write the Markdown here")] = None,
) -> None:
    """Compare two plans; Markdown for a pull-request comment."""
    from infra.plan.cli import diff

    diff(base, head, output)


serve_app = typer.Typer(
    help="Run a runtime service; its settings come from AGENTOPS_* environment variables.",
    no_args_is_help=True,
)
app.add_typer(serve_app, name="serve")


@serve_app.command("manager")
def serve_manager_command() -> None:
    """The agent manager: task API, agent registry, dispatch (port 8080 by default)."""
    from runtime.manager.app import create_manager_app
    from runtime.manager.settings import ManagerSettings
    from runtime.service.serve import serve

    serve(ManagerSettings, create_manager_app)


@serve_app.command("worker")
def serve_worker_command() -> None:
    """An agent worker of one pool: runs the tasks the manager assigns (port 8082)."""
    from runtime.service.serve import serve
    from runtime.worker.app import create_worker_app
    from runtime.worker.settings import WorkerSettings

    serve(WorkerSettings, create_worker_app)


cost_app = typer.Typer(help="Model prices, spend and budgets.", no_args_is_help=True)
app.add_typer(cost_app, name="cost")


@cost_app.command("prices")
def cost_prices_command(
    stack: Annotated[str, typer.Option(help="stack whose cost config to use")] = "staging",
    stack_dir: Annotated[
        Path, typer.Option(help="where Pulumi.yaml and Pulumi.<stack>.yaml live")
    ] = Path("."),
) -> None:
    """Print the effective price of every configured model and where it comes from."""
    from rich.console import Console

    from infra.config import ConfigError
    from infra.plan.stackfile import load_stack_config
    from runtime.cost.prices import UnknownModelError
    from runtime.cost.report import price_table
    from runtime.cost.settings import price_book

    errors = Console(stderr=True, soft_wrap=True)
    try:
        book = price_book(load_stack_config(stack_dir, stack).cost)
    except (ConfigError, FileNotFoundError, UnknownModelError) as err:
        errors.print(f"[red]{err}[/red]")
        raise typer.Exit(code=2) from None
    Console().print(price_table(book.table()))


@serve_app.command("cost-engine")
def serve_cost_engine_command() -> None:
    """The cost engine: usage ledger, budgets, limits, model routing (port 8081)."""
    from runtime.cost.app import build_app
    from runtime.cost.settings import CostEngineSettings
    from runtime.service.serve import serve

    serve(CostEngineSettings, build_app)


@cost_app.command("report")
def cost_report_command(
    url: Annotated[
        str | None, typer.Option(help="a running cost engine, e.g. http://127.0.0.1:8081")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="bearer token file for --url (first line is used)")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="read the ledger straight from this Redis instead")
    ] = None,
    stack: Annotated[str, typer.Option(help="stack whose cost config to use with Redis")] = (
        "staging"
    ),
    stack_dir: Annotated[
        Path, typer.Option(help="where Pulumi.yaml and Pulumi.<stack>.yaml live")
    ] = Path("."),
    days: Annotated[int, typer.Option(min=1, max=366, help="days in the daily series")] = 30,
    png: Annotated[
        Path | None, typer.Option(help="also write a chart of daily spend against budget")
    ] = None,
) -> None:
    """Print the spend analysis (from a running engine or from Redis) and optionally a chart."""
    from rich.console import Console

    from runtime.cost.report import spend_chart, spend_report

    errors = Console(stderr=True, soft_wrap=True)
    if (url is None) == (redis_url is None):
        errors.print("[red]give exactly one of --url and --redis-url[/red]")
        raise typer.Exit(code=2)
    try:
        report = (
            _report_from_engine(url, token_file, days)
            if url is not None
            else _report_from_redis(str(redis_url), _stack_cost(stack_dir, stack), days)
        )
    except (OSError, ValueError, LookupError) as err:
        errors.print(f"[red]{err}[/red]")
        raise typer.Exit(code=2) from None
    Console().print(spend_report(report))
    if png is not None:
        spend_chart(report, png)
        Console().print(f"chart written to {png}")


def _stack_cost(stack_dir: Path, stack: str) -> CostConfig:
    from infra.plan.stackfile import load_stack_config

    return load_stack_config(stack_dir, stack).cost


def _report_from_engine(url: str, token_file: Path | None, days: int) -> ReportOut:
    import httpx

    from runtime import endpoints
    from runtime.cost.api import ReportOut

    headers = {}
    if token_file is not None:
        headers["Authorization"] = f"Bearer {token_file.read_text().splitlines()[0].strip()}"
    response = httpx.get(
        f"{url.rstrip('/')}{endpoints.COST_API}/report",
        params={"days": days},
        headers=headers,
        timeout=30,
    )
    if response.status_code != 200:
        raise ValueError(f"cost engine answered {response.status_code}: {response.text}")
    return ReportOut.model_validate_json(response.content)


def _report_from_redis(redis_url: str, cost: CostConfig, days: int) -> ReportOut:
    import asyncio

    from prometheus_client import CollectorRegistry
    from redis.asyncio import Redis

    from runtime.cost.api import report_out
    from runtime.cost.engine import CostEngine
    from runtime.cost.metrics import CostMetrics

    async def read() -> ReportOut:
        client = Redis.from_url(redis_url)
        try:
            engine = CostEngine(client, cost, CostMetrics(CollectorRegistry()))
            return report_out(await engine.report(days), cost.budget.daily_usd)
        finally:
            await client.aclose()

    return asyncio.run(read())


if __name__ == "__main__":
    app()
