"""Kinds of number the config, the settings and the APIs share, each bounded once."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["Share"]

# A share, weight, score, priority or complexity: a number from 0 to 1, both included.
Share = Annotated[float, Field(ge=0, le=1)]
