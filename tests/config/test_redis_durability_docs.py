"""The README's loss-window table says what the config model says, mode by mode."""

from __future__ import annotations

from infra.config.state import APPENDFSYNC_LOSS_WINDOW
from tests.conftest import REPO


def test_readme_states_each_appendfsync_loss_window() -> None:
    readme = (REPO / "README.md").read_text()
    for mode, window in APPENDFSYNC_LOSS_WINDOW.items():
        assert f"| `{mode.value}`" in readme and f" | {window} |" in readme, mode
