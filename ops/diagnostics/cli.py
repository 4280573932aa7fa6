"""The `agentops doctor` command (registered by ops/cli.py).

Exit codes: 0 when no check is critical (warnings included), 1 when at least one is, 2 for
bad options, a stack file that does not validate or doctor settings out of range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["EXIT_USAGE", "doctor_command"]

EXIT_USAGE = 2


def doctor_command(
    stack: Annotated[
        str, typer.Option(help="stack whose namespaces, Deployments and thresholds to check")
    ],
    stack_dir: Annotated[
        Path, typer.Option(help="where Pulumi.yaml and Pulumi.<stack>.yaml live")
    ] = Path("."),
    kubernetes: Annotated[
        bool, typer.Option(help="check the cluster (--no-kubernetes to skip it)")
    ] = True,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"),
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    redis_url: Annotated[str | None, typer.Option(help="e.g. redis://127.0.0.1:6379/0")] = None,
    redis_password_file: Annotated[
        Path | None, typer.Option(help="file holding the Redis password")
    ] = None,
    prometheus_url: Annotated[
        str | None, typer.Option(help="e.g. http://127.0.0.1:9090 (a port-forward)")
    ] = None,
    vault_address: Annotated[str | None, typer.Option(help="e.g. https://127.0.0.1:8200")] = None,
    vault_token_file: Annotated[
        Path | None, typer.Option(help="file holding a Vault token (operator)")
    ] = None,
    vault_role: Annotated[
        str | None, typer.Option(help="Kubernetes-auth role instead of a token (in a pod)")
    ] = None,
    vault_jwt_file: Annotated[
        Path | None, typer.Option(help="service-account token for --vault-role")
    ] = None,
    vault_ca_file: Annotated[
        Path | None, typer.Option(help="CA bundle that signs Vault's certificate")
    ] = None,
    cost_url: Annotated[
        str | None, typer.Option(help="the cost engine, e.g. http://127.0.0.1:8081")
    ] = None,
    cost_token_file: Annotated[
        Path | None, typer.Option(help="bearer token file of the cost engine's API")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Check a running platform against its stack: a health report with recommendations.

    Exits 1 when any check is critical, 0 otherwise; 2 on bad options or config.
    """
    from pydantic import ValidationError
    from rich.console import Console

    from contracts.config import ConfigError
    from infra.plan.stackfile import load_stack_config
    from ops.diagnostics.doctor import DoctorTargets, run_doctor
    from ops.diagnostics.platform import expectations
    from ops.diagnostics.probes.vault import VaultAccess
    from ops.diagnostics.report import table
    from ops.diagnostics.settings import DoctorSettings

    errors = Console(stderr=True, soft_wrap=True)
    try:
        settings = DoctorSettings()
        expect = expectations(load_stack_config(stack_dir, stack))
    except (ConfigError, FileNotFoundError, ValidationError) as err:
        errors.print(f"[red]{err}[/red]")
        raise typer.Exit(code=EXIT_USAGE) from None
    if vault_address is None and (vault_token_file or vault_role):
        errors.print("[red]--vault-token-file and --vault-role need --vault-address[/red]")
        raise typer.Exit(code=EXIT_USAGE)
    targets = DoctorTargets(
        kubernetes=kubernetes,
        kubeconfig=kubeconfig,
        kube_context=context,
        redis_url=redis_url,
        redis_password_file=redis_password_file,
        prometheus_url=prometheus_url,
        vault=VaultAccess(
            vault_address, vault_token_file, vault_role, vault_jwt_file, vault_ca_file
        )
        if vault_address is not None
        else None,
        cost_url=cost_url,
        cost_token_file=cost_token_file,
    )
    report = run_doctor(stack, expect, targets, settings)
    if json_output:
        # Plain text, not rich's: a pipe into jq must get exactly the JSON.
        typer.echo(report.model_dump_json(indent=2))
    else:
        out = Console()
        out.print(table(report))
        if report.not_checked:
            out.print(f"not checked: {', '.join(report.not_checked)}", markup=False)
        if report.recommendations:
            out.print("\n[bold]Recommendations[/bold]")
            for line in report.recommendations:
                out.print(f"- {line}", highlight=False, markup=False)
        out.print(f"\nrunbook: docs/operations.md   exit code: {report.exit_code}")
    raise typer.Exit(code=report.exit_code)
