"""`python -m runtime serve manager|cost-engine|worker`: the runtime image's entry point."""

from runtime.cli import app

app()
