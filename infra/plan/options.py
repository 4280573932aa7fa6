"""The `plan` and `diff` commands' arguments, declared once: the operator CLI (`ops.cli`) and
`infra.plan.cli` share them, and importing this module loads neither Pulumi nor the program."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["BasePlan", "HeadPlan", "MarkdownOut", "Out", "Quiet", "StackDir", "Stacks"]

Stacks = Annotated[list[str] | None, typer.Argument(help="stacks to plan (default: staging prod)")]
Out = Annotated[Path, typer.Option(help="directory for <stack>/plan.json + manifests/")]
Quiet = Annotated[bool, typer.Option(help="print only one line per stack")]
StackDir = Annotated[
    Path | None, typer.Option(help="where Pulumi.yaml and Pulumi.<stack>.yaml live")
]
BasePlan = Annotated[Path, typer.Argument(help="base plan directory or plan.json")]
HeadPlan = Annotated[Path, typer.Argument(help="head plan directory or plan.json")]
MarkdownOut = Annotated[Path | None, typer.Option(help="also write the Markdown here")]
