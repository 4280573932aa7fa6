"""The `agentops doctor` command (registered by ops/cli.py).

Exit codes: 0 when no check is critical (warnings included), 1 when at least one is, 2 for
bad options, a stack file that does not validate or doctor settings out of range.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from ops.diagnostics.platform import PlatformExpectations
    from ops.diagnostics.report import Report
    from ops.diagnostics.settings import DoctorSettings

__all__ = ["EXIT_USAGE", "doctor_command"]

EXIT_USAGE = 2


# The command's options, one alias each, so the signature below reads as a list of names.
Stack = Annotated[
    str, typer.Option(help="stack whose namespaces, Deployments and thresholds to check")
]
StackDir = Annotated[Path, typer.Option(help="where Pulumi.yaml and Pulumi.<stack>.yaml live")]
Kubernetes = Annotated[bool, typer.Option(help="check the cluster (--no-kubernetes to skip it)")]
Kubeconfig = Annotated[
    Path | None,
    typer.Option(help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"),
]
Context = Annotated[str | None, typer.Option(help="kubeconfig context")]
RedisUrl = Annotated[str | None, typer.Option(help="e.g. redis://127.0.0.1:6379/0")]
RedisPasswordFile = Annotated[Path | None, typer.Option(help="file holding the Redis password")]
PrometheusUrl = Annotated[
    str | None, typer.Option(help="e.g. http://127.0.0.1:9090 (a port-forward)")
]
VaultAddress = Annotated[str | None, typer.Option(help="e.g. https://127.0.0.1:8200")]
VaultTokenFile = Annotated[Path | None, typer.Option(help="file holding a Vault token (operator)")]
VaultRole = Annotated[
    str | None, typer.Option(help="Kubernetes-auth role instead of a token (in a pod)")
]
VaultJwtFile = Annotated[Path | None, typer.Option(help="service-account token for --vault-role")]
VaultCaFile = Annotated[Path | None, typer.Option(help="CA bundle that signs Vault's certificate")]
CostUrl = Annotated[str | None, typer.Option(help="the cost engine, e.g. http://127.0.0.1:8081")]
CostTokenFile = Annotated[
    Path | None, typer.Option(help="bearer token file of the cost engine's API")
]
JsonOutput = Annotated[bool, typer.Option("--json", help="print the report as JSON")]


def doctor_command(
    stack: Stack,
    stack_dir: StackDir = Path("."),
    kubernetes: Kubernetes = True,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    redis_url: RedisUrl = None,
    redis_password_file: RedisPasswordFile = None,
    prometheus_url: PrometheusUrl = None,
    vault_address: VaultAddress = None,
    vault_token_file: VaultTokenFile = None,
    vault_role: VaultRole = None,
    vault_jwt_file: VaultJwtFile = None,
    vault_ca_file: VaultCaFile = None,
    cost_url: CostUrl = None,
    cost_token_file: CostTokenFile = None,
    json_output: JsonOutput = False,
) -> None:
    """Check a running platform against its stack: a health report with recommendations.

    Exits 1 when any check is critical, 0 otherwise; 2 on bad options or config.
    """
    from ops.diagnostics.doctor import DoctorTargets, run_doctor
    from ops.diagnostics.probes.vault import VaultAccess

    settings, expect = _settings_and_expectations(stack, stack_dir)
    if vault_address is None and (vault_token_file or vault_role):
        _usage_error("--vault-token-file and --vault-role need --vault-address")
    vault = None
    if vault_address is not None:
        vault = VaultAccess(
            vault_address, vault_token_file, vault_role, vault_jwt_file, vault_ca_file
        )
    targets = DoctorTargets(
        kubernetes=kubernetes,
        kubeconfig=kubeconfig,
        kube_context=context,
        redis_url=redis_url,
        redis_password_file=redis_password_file,
        prometheus_url=prometheus_url,
        vault=vault,
        cost_url=cost_url,
        cost_token_file=cost_token_file,
    )
    report = run_doctor(stack, expect, targets, settings)
    if json_output:
        # Plain text, not rich's: a pipe into jq must get exactly the JSON.
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    raise typer.Exit(code=report.exit_code)


def _usage_error(message: str) -> NoReturn:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[red]{message}[/red]")
    raise typer.Exit(code=EXIT_USAGE)


def _settings_and_expectations(
    stack: str, stack_dir: Path
) -> tuple[DoctorSettings, PlatformExpectations]:
    """The doctor's settings and what the stack expects; a usage error (exit 2) when either is
    invalid."""
    from pydantic import ValidationError

    from contracts.config import ConfigError
    from infra.plan.stackfile import load_stack_config
    from ops.diagnostics.platform import expectations
    from ops.diagnostics.settings import DoctorSettings

    try:
        return DoctorSettings(), expectations(load_stack_config(stack_dir, stack))
    except (ConfigError, FileNotFoundError, ValidationError) as err:
        _usage_error(str(err))


def _print_report(report: Report) -> None:
    """The report as a rich table, what was not checked, the recommendations, the exit code."""
    from rich.console import Console

    from ops.diagnostics.report import table

    out = Console()
    out.print(table(report))
    if report.not_checked:
        out.print(f"not checked: {', '.join(report.not_checked)}", markup=False)
    if report.recommendations:
        out.print("\n[bold]Recommendations[/bold]")
        for line in report.recommendations:
            out.print(f"- {line}", highlight=False, markup=False)
    out.print(f"\nrunbook: docs/operations.md   exit code: {report.exit_code}")
