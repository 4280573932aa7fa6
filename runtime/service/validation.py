"""Checks of request data that JSON schemas cannot express."""

from __future__ import annotations

import re

from pydantic import JsonValue

__all__ = ["unencodable"]

# Keys that read as field names are named in errors; any other key is the client's text,
# referred to by position so an error never echoes it.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def unencodable(value: JsonValue, path: str) -> str | None:
    """The path of the first string (value or key) that is not valid Unicode, e.g. a lone
    surrogate a JSON escape can carry; None when every string encodes to UTF-8."""
    if isinstance(value, str):
        return None if _encodes(value) else path
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = unencodable(item, f"{path}[{i}]")
            if found is not None:
                return found
    elif isinstance(value, dict):
        for i, (key, item) in enumerate(value.items()):
            if not _encodes(key):
                return f"{path}.<key {i}>"
            found = unencodable(item, f"{path}.{key if _NAME.match(key) else f'<key {i}>'}")
            if found is not None:
                return found
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
