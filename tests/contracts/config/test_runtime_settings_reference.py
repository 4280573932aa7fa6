"""The runtime settings page's tables are the settings models, rendered."""

from __future__ import annotations

from contracts.settings.environment import env_name
from contracts.settings.reference import PAGE, PAGE_END, PAGE_START, SERVICES, render_settings
from tests.stacks import REPO


def test_docs_runtime_settings_match_the_models() -> None:
    page = (REPO / PAGE).read_text()
    section = page[page.index(PAGE_START) + len(PAGE_START) : page.index(PAGE_END)]
    assert section == render_settings(), (
        f"{PAGE} is stale: run `python -m contracts.settings.reference --write`"
    )


def test_every_variable_of_every_service_has_a_row() -> None:
    rows = render_settings().splitlines()
    for heading, model in SERVICES:
        table = rows[rows.index(f"#### {heading}") :]
        for name, field in model.model_fields.items():
            variable = f"`{env_name(model, name)}`"
            (row,) = [r for r in table if r.startswith(f"| {variable}")][:1]
            assert ("**required**" in row) == field.is_required(), row
