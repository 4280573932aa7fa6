"""The short, readable form of a connection or protocol error, for a check's detail."""

from __future__ import annotations

__all__ = ["describe"]


def describe(err: BaseException) -> str:
    # urllib3's MaxRetryError and friends keep the root cause in `reason`; the outer message
    # repeats the URL and retry bookkeeping.
    reason = getattr(err, "reason", None)
    text = str(reason) if isinstance(reason, BaseException) else str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
