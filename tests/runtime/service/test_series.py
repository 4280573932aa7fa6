"""runtime.service.series: a label set's series is found once, and every operation leaves the
same exposition as prometheus_client's own classes (removals and clears included)."""

from __future__ import annotations

import prometheus_client
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from runtime.service import series

_VALUES = st.sampled_from(["a", "b", "c", 1])
_OPS = st.lists(
    st.tuples(st.sampled_from(["inc", "set", "observe", "remove", "clear"]), _VALUES, _VALUES),
    max_size=30,
)


def _metrics(module: object, registry: CollectorRegistry) -> tuple[object, object, object]:
    labels = ["x", "y"]
    return (
        module.Counter("c", "c", labels, registry=registry),  # type: ignore[attr-defined]
        module.Gauge("g", "g", labels, registry=registry),  # type: ignore[attr-defined]
        module.Histogram("h", "h", labels, registry=registry),  # type: ignore[attr-defined]
    )


def _exposed(registry: CollectorRegistry) -> list[bytes]:
    """The exposition without the `_created` timestamps (the services turn those off)."""
    return [line for line in generate_latest(registry).splitlines() if b"_created" not in line]


def _apply(metrics: tuple[object, object, object], ops: list[tuple[str, object, object]]) -> None:
    counter, gauge, histogram = metrics
    for op, x, y in ops:
        for metric in metrics:
            if op == "remove":
                metric.remove(x, y)  # type: ignore[attr-defined]
            elif op == "clear":
                metric.clear()  # type: ignore[attr-defined]
        if op == "inc":
            counter.labels(x, y).inc()  # type: ignore[attr-defined]
        elif op == "set":
            gauge.labels(x, y).set(7)  # type: ignore[attr-defined]
        elif op == "observe":
            histogram.labels(x, y).observe(0.3)  # type: ignore[attr-defined]


@given(_OPS)
def test_the_exposition_is_prometheus_clients(ops: list[tuple[str, object, object]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    _apply(_metrics(series, ours), ops)
    _apply(_metrics(prometheus_client, theirs), ops)
    assert _exposed(ours) == _exposed(theirs)


def test_a_label_set_is_found_once_and_forgotten_when_removed() -> None:
    counter = series.Counter("c", "c", ["x"], registry=CollectorRegistry())
    first = counter.labels("a")
    assert counter.labels("a") is first
    assert counter.labels(x="a") is first  # by name: prometheus_client's own lookup
    first.inc()
    counter.remove("a")
    again = counter.labels("a")
    assert again is not first and again._value.get() == 0
