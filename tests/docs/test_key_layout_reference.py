"""docs/architecture.md holds exactly the key-layout tables the services' keys modules give."""

from __future__ import annotations

from runtime.service.key_layout import KEYS_END, KEYS_PAGE, KEYS_START, render_key_layout
from tests.stacks import REPO


def test_the_page_holds_the_generated_key_layout() -> None:
    page = (REPO / KEYS_PAGE).read_text()
    section = page.split(KEYS_START, 1)[1].split(KEYS_END, 1)[0]
    assert section.strip() == render_key_layout().strip(), (
        "run `python -m runtime.service.key_layout --write`"
    )
