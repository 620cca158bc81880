"""The array histogram exports exactly what prometheus-client's own histogram exports for the same values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from connectors.metrics import LATENCY_BUCKETS, ArrayHistogram

values_strategy = st.lists(
    st.one_of(st.sampled_from(LATENCY_BUCKETS), st.floats(0.0, 100.0, allow_nan=False)), max_size=50
)


def _samples(registry: CollectorRegistry) -> list[str]:
    """The exposition lines, with the values of the ``_created`` series (creation times) left out."""
    lines = generate_latest(registry).decode().splitlines()
    return [line.rsplit(" ", 1)[0] if line.startswith("lat_seconds_created{") else line for line in lines]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), values_strategy), max_size=6))
def test_observing_arrays_exports_the_series_of_observing_each_value(observed: list[tuple[str, list[float]]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    array_histogram = ArrayHistogram("lat_seconds", "Latency.", "job", LATENCY_BUCKETS, ours)
    histogram = Histogram("lat_seconds", "Latency.", ["job"], buckets=LATENCY_BUCKETS, registry=theirs)
    for job, values in observed:
        array_histogram.observe(job, np.array(values, dtype=np.float64))
        child = histogram.labels(job)  # a series exists from its first observation, even of nothing
        for value in values:
            child.observe(value)
    # sums are added in a different order: compare them as numbers
    ours_lines, their_lines = _samples(ours), _samples(theirs)
    assert [line for line in ours_lines if "_sum" not in line] == [line for line in their_lines if "_sum" not in line]
    ours_sums = [float(line.rsplit(" ", 1)[1]) for line in ours_lines if "_sum{" in line]
    their_sums = [float(line.rsplit(" ", 1)[1]) for line in their_lines if "_sum{" in line]
    assert np.allclose(ours_sums, their_sums, rtol=1e-12, atol=0)


def test_bad_bucket_bounds_and_a_second_metric_of_the_same_name_are_refused() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match=r"histogram h takes finite, increasing bucket bounds, got \[1.0, inf\]"):
        ArrayHistogram("h", "H.", "job", (1.0, float("inf")), registry)
    with pytest.raises(ValueError, match="increasing"):
        ArrayHistogram("h", "H.", "job", (2.0, 1.0), registry)
    ArrayHistogram("h", "H.", "job", (1.0, 2.0), registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Histogram("h", "H.", ["job"], registry=registry)
