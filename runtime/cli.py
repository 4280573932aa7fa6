"""`serve`: the runtime image's only command (`python -m runtime serve <service>`).

The operator's `agentops` CLI (ops/cli.py) mounts the same group as `agentops serve`.
"""

from __future__ import annotations

import typer

__all__ = ["app", "serve_app"]

serve_app = typer.Typer(
    help="Run a runtime service; its settings come from AGENTOPS_* environment variables.",
    no_args_is_help=True,
)


@serve_app.command("manager")
def serve_manager_command() -> None:
    """The agent manager: task API, agent registry, dispatch (port 8080 by default)."""
    from contracts.settings.manager import ManagerSettings
    from runtime.manager.app import create_manager_app
    from runtime.service.serve import serve

    serve(ManagerSettings, create_manager_app)


@serve_app.command("worker")
def serve_worker_command() -> None:
    """An agent worker of one pool: runs the tasks the manager assigns (port 8082)."""
    from contracts.settings.worker import WorkerSettings
    from runtime.service.serve import serve
    from runtime.worker.app import create_worker_app

    serve(WorkerSettings, create_worker_app)


@serve_app.command("cost-engine")
def serve_cost_engine_command() -> None:
    """The cost engine: usage ledger, budgets, limits, model routing (port 8081)."""
    from contracts.settings.cost import CostEngineSettings
    from runtime.cost.app import build_app
    from runtime.service.serve import serve

    serve(CostEngineSettings, build_app)


app = typer.Typer(name="runtime", no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(serve_app, name="serve")
