"""The `agentops` command line: one entry point for operators.

Infra commands import Pulumi lazily, so the runtime image never needs it installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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


@app.command("diff")
def diff_command(
    base: Annotated[Path, typer.Argument(help="base plan directory or plan.json")],
    head: Annotated[Path, typer.Argument(help="head plan directory or plan.json")],
    output: Annotated[Path | None, typer.Option(help="also write the Markdown here")] = None,
) -> None:
    """Compare two plans; Markdown for a pull-request comment."""
    from infra.plan.cli import diff

    diff(base, head, output)


if __name__ == "__main__":
    app()
