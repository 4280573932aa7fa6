"""Prometheus metrics whose labelled series are found once per label set.

prometheus_client's `labels()` turns every value into a string and takes the metric's lock on
every call; on the task path a worker called it a dozen times per task (12.6 % of its CPU in
the hot-path benchmark). These classes keep each label set's series in a dict keyed by the
values as given, so a repeat is one lookup. Same series, same exposition; removing or clearing
series forgets the lookups too.
"""

from __future__ import annotations

from typing import Any

import prometheus_client
from prometheus_client.metrics import MetricWrapperBase

__all__ = ["Counter", "Gauge", "Histogram"]


class _FoundOnce(MetricWrapperBase):
    def labels(self, *values: Any, **named: Any) -> Any:
        if named:
            return super().labels(*values, **named)
        found: dict[tuple[Any, ...], Any] = self.__dict__.setdefault("_found", {})
        series = found.get(values)
        if series is None:
            series = found[values] = super().labels(*values)
        return series

    def remove(self, *values: Any) -> None:
        self.__dict__.pop("_found", None)
        super().remove(*values)

    def remove_by_labels(self, labels: dict[str, str]) -> None:
        self.__dict__.pop("_found", None)
        super().remove_by_labels(labels)

    def clear(self) -> None:
        self.__dict__.pop("_found", None)
        super().clear()


class Counter(_FoundOnce, prometheus_client.Counter):
    pass


class Gauge(_FoundOnce, prometheus_client.Gauge):
    pass


class Histogram(_FoundOnce, prometheus_client.Histogram):
    pass
