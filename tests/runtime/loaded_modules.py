"""Runs the runtime's entry point exactly as the image does (`python -m runtime serve …`) and,
on SIGUSR1 (which uvicorn leaves alone), writes the names in `sys.modules` to the file named
by `LOADED_MODULES_FILE`: what a service has really loaded while it serves.

Usage: python -m tests.runtime.loaded_modules serve manager
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path


def _dump(path: Path) -> None:
    part = path.with_suffix(".part")
    part.write_text("\n".join(sorted(sys.modules)) + "\n")
    part.rename(path)


if __name__ == "__main__":
    target = Path(os.environ["LOADED_MODULES_FILE"])
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: _dump(target))
    sys.argv = ["runtime", *sys.argv[1:]]
    runpy.run_module("runtime", run_name="__main__", alter_sys=True)
