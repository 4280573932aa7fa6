"""What the fast-lane parity tests share (tests/runtime/cost/test_lean_routes.py,
tests/runtime/manager/test_lean_submit.py): the same request to a service and to a copy of it
with the route declared the plain FastAPI way must get the same answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from starlette.testclient import TestClient

__all__ = ["JSON_VALUES", "NOT_OBJECTS", "same_answer"]

# Bodies that are no JSON object: none, broken, another JSON value, not UTF-8.
NOT_OBJECTS = [b"", b"{", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"]
# Values a generated body puts into a field.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _answer(
    client: TestClient, path: str, body: bytes, headers: dict[str, str], vary: re.Pattern[str]
) -> Any:
    r = client.post(path, content=body, headers=headers)
    return (
        r.status_code,
        r.headers.get("retry-after"),
        r.headers.get("content-type"),
        vary.sub("<varies>", r.headers.get("location", "")),
        vary.sub("<varies>", r.text),
    )


def same_answer(
    clients: Sequence[TestClient],
    path: str,
    body: bytes,
    headers: dict[str, str],
    vary: re.Pattern[str],
) -> int:
    """The status both clients' services answer `body` with, asserting the answers are the
    same but for what `vary` matches (ids, moments); a header given empty is not sent."""
    sent = {k: v for k, v in headers.items() if v}
    answers = [_answer(c, path, body, sent, vary) for c in clients]
    assert answers[0] == answers[1], (path, body, headers)
    return int(answers[0][0])
