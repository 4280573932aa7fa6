"""The configuration page's loss-window table says what the config model says, mode by mode."""

from __future__ import annotations

from contracts.config.state import APPENDFSYNC_LOSS_WINDOW
from tests.stacks import REPO


def test_docs_state_each_appendfsync_loss_window() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    for mode, window in APPENDFSYNC_LOSS_WINDOW.items():
        assert f"| `{mode.value}`" in page and f" | {window} |" in page, mode
