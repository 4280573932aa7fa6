"""`agentops plan` and `agentops diff`: the credential-free preview of every stack."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import typer
from rich.console import Console

from infra.plan.connectivity import REPO_ROOT, VERDICT_FILE, summary, write_report
from infra.plan.diff import diff_flows, diff_plans, render_markdown
from infra.plan.document import Plan
from infra.plan.options import BasePlan, HeadPlan, MarkdownOut, Out, Quiet, StackDir, Stacks
from infra.plan.output import FLOWS_FILE
from infra.plan.stackfile import load_stack_config
from infra.plan.summary import summary_tree
from infra.plan.upgrade import assess_upgrade, render_upgrade

__all__ = ["DEFAULT_STACKS", "EXIT_REFUSED_UPGRADE", "diff", "plan"]

EXIT_REFUSED_UPGRADE = 3

DEFAULT_STACKS = ("staging", "prod")
_console = Console()
_errors = Console(stderr=True, soft_wrap=True)


def plan(
    stacks: Stacks = None,
    out: Out = Path("plans"),
    quiet: Quiet = False,
    stack_dir: StackDir = None,
) -> None:
    """Run the real program of each stack under Pulumi's mock engine and write its plan."""
    failed: dict[str, int] = {}
    for stack in stacks or list(DEFAULT_STACKS):
        target = out / stack
        started = time.perf_counter()
        # One process per stack: Pulumi's runtime state is global to a process.
        proc = subprocess.run(  # noqa: S603 - our own module, argv list
            [
                sys.executable,
                "-m",
                "infra.plan.runner",
                stack,
                str(target),
                *([str(stack_dir)] if stack_dir else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        # Advisory violations come on stderr of a successful plan: show them too.
        if proc.stderr.strip():
            _errors.print(proc.stderr.rstrip(), markup=False, highlight=False)
        if proc.returncode != 0:
            failed[stack] = proc.returncode
            continue
        result = Plan.load(target)
        _connectivity(stack, stack_dir, target)
        if quiet:
            _console.print(f"{stack}: {len(result.resources)} registrations → {target}")
        else:
            _console.print(summary_tree(result))
            _console.print(f"[dim]planned in {elapsed:.2f} s → {target}[/dim]\n")
    if failed:
        _errors.print(f"[red]plan failed for: {', '.join(failed)}[/red]")
        # The runner's own status: 2 invalid config, 4 mandatory policy violation.
        raise typer.Exit(code=max(failed.values()))


def _connectivity(stack: str, stack_dir: Path | None, target: Path) -> None:
    """The analyzers' verdicts beside plan.json, and one line each on the console."""
    cfg = load_stack_config(stack_dir or REPO_ROOT, stack)
    found = write_report(cfg, target)
    style = "green" if found["holds"] and found["complete"] else "red"
    for line in summary(found):
        _console.print(f"[{style}]{stack} {line}[/{style}]", highlight=False)
    if not found["holds"]:
        _errors.print(
            f"[red]{stack}: the analyzers disagree with the flow table, see "
            f"{target / VERDICT_FILE}[/red]"
        )


def _flows(plan: Path) -> list[dict[str, Any]]:
    """The flow table written beside a plan (none for plans older than the table)."""
    path = (plan.parent if plan.is_file() else plan) / FLOWS_FILE
    return cast(list[dict[str, Any]], json.loads(path.read_text())) if path.exists() else []


def diff(
    base: BasePlan,
    head: HeadPlan,
    output: MarkdownOut = None,
) -> None:
    """Compare two plans and print the changes as pull-request Markdown.

    Exits 3 when the head changes the Kubernetes version in a way EKS refuses.
    """
    try:
        changes = diff_plans(Plan.load(base), Plan.load(head))
    except (FileNotFoundError, ValueError) as err:
        _errors.print(f"[red]{err}[/red]")
        raise typer.Exit(code=2) from None
    markdown = render_markdown(changes, diff_flows(_flows(base), _flows(head)))
    upgrade = assess_upgrade(changes)
    if upgrade is not None:
        # The upgrade goes first in the comment: it is what a reviewer must see.
        title, _, rest = markdown.partition("\n\n")
        markdown = f"{title}\n\n{render_upgrade(upgrade)}\n{rest}"
    if output is not None:
        output.write_text(markdown, encoding="utf-8")
    typer.echo(markdown, nl=False)
    if upgrade is not None and upgrade.error:
        _errors.print(f"[red]refused: {upgrade.error}[/red]", markup=True, highlight=False)
        raise typer.Exit(code=EXIT_REFUSED_UPGRADE)
