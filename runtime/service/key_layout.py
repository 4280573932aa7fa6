"""Renders the Redis key-layout tables (docs/architecture.md) from each service's `keys.LAYOUT`.

`python -m runtime.service.key_layout` prints the section, `... --write` rewrites the page's
generated section in place; a test checks the page holds exactly this.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

from contracts.config.reference import replace_section
from runtime.cost import keys as cost_keys
from runtime.manager import keys as manager_keys

__all__ = ["KEYS_END", "KEYS_PAGE", "KEYS_START", "render_key_layout", "update_page"]

KEYS_PAGE: Final = Path("docs/architecture.md")
KEYS_START: Final = "<!-- redis-keys:start -->\n"
KEYS_END: Final = "<!-- redis-keys:end -->"


def render_key_layout() -> str:
    """One table per service: its group (hash tag), then each key, what it holds and which
    scripts touch it together with other keys of the group."""
    lines: list[str] = []
    for service, module in (("manager and workers", manager_keys), ("cost engine", cost_keys)):
        lines += [
            f"#### {service}: group `{module.GROUP}`, prefix `{module.PREFIX}`",
            "",
            "| key | type | holds | scripts touching it with others |",
            "|---|---|---|---|",
        ]
        for row in module.LAYOUT:
            scripts = ", ".join(row.scripts) or "—"
            lines.append(f"| `{row.pattern}` | {row.kind} | {row.holds} | {scripts} |")
        lines.append("")
    return "\n".join(lines)


def update_page(path: Path = KEYS_PAGE) -> None:
    replace_section(path, KEYS_START, KEYS_END, render_key_layout())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        update_page()
    else:
        print(render_key_layout(), end="")
