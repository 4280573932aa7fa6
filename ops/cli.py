"""The `agentops` command line: one entry point for operators.

Infra commands import Pulumi lazily, so the runtime image never needs it installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.plan.options import BasePlan, HeadPlan, MarkdownOut, Out, Quiet, StackDir, Stacks
from ops.diagnostics.cli import doctor_command
from runtime.cli import serve_app

if TYPE_CHECKING:
    from decimal import Decimal
    from typing import Any

    from rich.table import Table

    from contracts.config import PlatformConfig
    from contracts.config.cost import CostConfig
    from ops.devstack.load import LoadReport
    from runtime.cost.schemas import ReportOut

app = typer.Typer(
    name="agentops",
    help="Operate the AI-agent platform: offline plans, diffs and the runtime services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("plan")
def plan_command(
    stacks: Stacks = None,
    out: Out = Path("plans"),
    quiet: Quiet = False,
    stack_dir: StackDir = None,
) -> None:
    """Plan stacks offline under Pulumi's mock engine (no cloud credentials)."""
    from infra.plan.cli import plan

    plan(stacks, out, quiet, stack_dir)


# Typer reads the options from the function's signature; its body imports lazily.
app.command("doctor")(doctor_command)


@app.command("diff")
def diff_command(
    base: BasePlan,
    head: HeadPlan,
    output: MarkdownOut = None,
) -> None:
    """Compare two plans; Markdown for a pull-request comment."""
    from infra.plan.cli import diff

    diff(base, head, output)


app.add_typer(serve_app, name="serve")


dev_app = typer.Typer(
    help="The whole runtime as processes on this machine, from a stack's config.",
    no_args_is_help=True,
)
app.add_typer(dev_app, name="dev")
_STATE_DIR = typer.Option(help="where the local platform keeps its state (delete to reset)")


@dev_app.command("up")
def dev_up_command(
    stack: Annotated[str, typer.Option(help="stack whose config to run")] = "local",
    stack_dir: Annotated[Path, typer.Option(help="where Pulumi.<stack>.yaml lives")] = Path("."),
    state_dir: Annotated[Path, _STATE_DIR] = Path(".agentops-dev"),
    workers: Annotated[
        int | None, typer.Option(min=1, max=32, help="workers per pool (default: minReplicas)")
    ] = None,
    latency_ms: Annotated[float, typer.Option(help="work handler: time per task")] = 0,
    failure_rate: Annotated[float, typer.Option(help="work handler: share that fails")] = 0,
) -> None:
    """Start Redis, the cost engine, the manager, the workers, Prometheus and Alertmanager."""
    import sys

    from rich.console import Console

    from contracts.settings.environment import env_name
    from ops.devstack.control import free_ports, start
    from ops.devstack.layout import DevOptions, plan, process_names
    from runtime.worker.handlers.work import WorkSettings

    console = Console()
    cfg = _load_stack_or_exit(stack_dir, stack)
    options = DevOptions(
        workers_per_pool=workers,
        worker_env={
            env_name(WorkSettings, "latency_ms"): str(latency_ms),
            env_name(WorkSettings, "failure_rate"): str(failure_rate),
        },
    )
    state = state_dir.resolve()
    dev = plan(cfg, state, free_ports(process_names(cfg, options)), sys.executable, options)
    with console.status("starting the local platform") as status:
        try:
            record = start(state, dev, lambda spec: status.update(f"{spec.name} ready"))
        except (RuntimeError, FileNotFoundError) as err:
            Console(stderr=True).print(f"[red]{err}[/red]")
            raise typer.Exit(code=1) from None
    console.print(_dev_table(record["processes"]))
    console.print(f"state: {state}   tokens: {state / 'secrets'}   stop: agentops dev down")


@dev_app.command("load")
def dev_load_command(
    tasks: Annotated[int, typer.Option(min=1, max=1_000_000, help="tasks to submit")] = 100,
    rate: Annotated[float, typer.Option(min=0.1, max=100_000, help="tasks per second")] = 20,
    team: Annotated[str, typer.Option(help="team billed for the tasks")] = "default",
    state_dir: Annotated[Path, _STATE_DIR] = Path(".agentops-dev"),
) -> None:
    """Submit a workload and print throughput, latency percentiles, success and spend."""
    import asyncio

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ops.devstack.control import read_state
    from ops.devstack.layout import AGENT_TYPE
    from ops.devstack.load import run_load

    record = read_state(state_dir.resolve())
    if record is None:
        Console(stderr=True).print(f"[red]no local platform in {state_dir}: agentops dev up[/red]")
        raise typer.Exit(code=1)
    urls = {p["name"]: f"http://127.0.0.1:{p['port']}" for p in record["processes"]}
    types = sorted({p["env"][AGENT_TYPE] for p in record["processes"] if p["role"] == "worker"})
    token = Path(record["tokens"]["api"]).read_text().strip()
    cost_token = Path(record["tokens"]["cost"]).read_text().strip()
    before = _spend_by_model(urls["cost-engine"], cost_token)
    limits_before = _limit_counts(urls["cost-engine"], cost_token)
    with Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as progress:
        bars = {
            "submitted": progress.add_task("submitted", total=tasks),
            "finished": progress.add_task("finished", total=tasks),
        }
        report = asyncio.run(
            run_load(
                urls["manager"],
                token,
                types,
                tasks,
                rate,
                team=team,
                progress=lambda kind, n: progress.advance(bars[kind], n),
            )
        )
    after = _spend_by_model(urls["cost-engine"], cost_token)
    report.limit_counted = {}
    for scope, (calls, usd, holds) in _limit_counts(urls["cost-engine"], cost_token).items():
        calls_before, usd_before, _ = limits_before.get(scope, (0, usd - usd, 0))
        report.limit_counted[scope] = (calls - calls_before, usd - usd_before, holds)
    report.spend_by_model = {
        model: usd - before[model] if model in before else usd
        for model, usd in after.items()
        if usd != before.get(model)
    }
    Console().print(_load_table(report))


@dev_app.command("down")
def dev_down_command(state_dir: Annotated[Path, _STATE_DIR] = Path(".agentops-dev")) -> None:
    """Stop every process of the local platform by PID (workers drain first)."""
    from rich.console import Console

    from ops.devstack.control import stop

    stopped = stop(state_dir.resolve())
    Console().print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _load_stack_or_exit(stack_dir: Path, stack: str) -> PlatformConfig:
    from rich.console import Console

    from contracts.config import ConfigError
    from infra.plan.stackfile import load_stack_config

    try:
        return load_stack_config(stack_dir, stack)
    except (ConfigError, FileNotFoundError) as err:
        Console(stderr=True, soft_wrap=True).print(f"[red]{err}[/red]")
        raise typer.Exit(code=2) from None


def _dev_table(processes: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title="Local platform")
    for column in ("process", "pid", "address", "log"):
        table.add_column(column)
    for p in processes:
        table.add_row(p["name"], str(p["pid"]), f"127.0.0.1:{p['port']}", p["log"])
    return table


def _spend_by_model(url: str, token: str) -> dict[str, Decimal]:
    from decimal import Decimal

    import httpx

    from contracts import endpoints

    response = httpx.get(
        f"{url}{endpoints.COST_API}/report",
        params={"days": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return {m: Decimal(v) for m, v in response.json()["by_model"].items()}


def _limit_counts(url: str, token: str) -> dict[str, tuple[int, Decimal, int]]:
    """Calls, USD and open holds each limited scope's sliding hour counts (the cost engine's
    own figures, not recomputed here)."""
    from decimal import Decimal

    import httpx

    from contracts import endpoints

    response = httpx.get(
        f"{url}{endpoints.COST_API}/limits",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return {
        row["scope"]: (int(row["requests"]), Decimal(row["cost_usd"]), int(row["open_holds"]))
        for row in response.json()
    }


def _load_table(report: LoadReport) -> Table:
    from rich.table import Table

    from ops.devstack.load import percentile

    table = Table(title="Load result", show_header=False)
    table.add_row(
        "submitted / refused",
        f"{report.submitted} / {sum(report.refused.values())}"
        + (f" {report.refused}" if report.refused else ""),
    )
    table.add_row("finished", f"{report.finished} ({report.statuses})")
    table.add_row("throughput", f"{report.throughput:.1f} tasks/s over {report.elapsed_s:.1f} s")
    if report.latencies_s:
        p50, p95, p99 = (percentile(report.latencies_s, q) * 1000 for q in (0.5, 0.95, 0.99))
        table.add_row("latency p50 / p95 / p99", f"{p50:.0f} / {p95:.0f} / {p99:.0f} ms")
    table.add_row("success rate", f"{report.success_rate:.1%}")
    for model, usd in sorted(report.spend_by_model.items()):
        table.add_row(f"spend {model}", f"{usd:f} USD")
    if report.spend_by_model:
        table.add_row("spend total", f"{sum(report.spend_by_model.values()):f} USD")
    for scope, (calls, usd, holds) in sorted(report.limit_counted.items()):
        table.add_row(
            f"hourly limit counted ({scope})",
            f"{usd:f} USD over {calls} calls, {holds} holds open",
        )
    return table


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

    from contracts.config import ConfigError
    from contracts.prices import UnknownModelError
    from contracts.settings.cost import price_book
    from infra.plan.stackfile import load_stack_config
    from ops.cost_report import price_table

    errors = Console(stderr=True, soft_wrap=True)
    try:
        book = price_book(load_stack_config(stack_dir, stack).cost)
    except (ConfigError, FileNotFoundError, UnknownModelError) as err:
        errors.print(f"[red]{err}[/red]")
        raise typer.Exit(code=2) from None
    Console().print(price_table(book.table()))


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

    from ops.cost_report import spend_chart, spend_report

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

    from contracts import endpoints
    from runtime.cost.schemas import ReportOut

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

    from runtime.cost.engine import CostEngine
    from runtime.cost.metrics import CostMetrics
    from runtime.cost.schemas import report_out
    from runtime.service.redis import connect_url

    async def read() -> ReportOut:
        client = connect_url(redis_url)
        try:
            engine = CostEngine(client, cost, CostMetrics(CollectorRegistry()))
            return report_out(await engine.report(days), cost.budget.daily_usd)
        finally:
            await client.aclose()

    return asyncio.run(read())


if __name__ == "__main__":
    app()
