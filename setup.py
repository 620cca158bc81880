"""The C extensions Winnow compiles on install (everything else is in pyproject.toml).

``jobs/line_encoding.pyx`` writes result and decision lines,
``jobs/fired_marks.pyx`` keeps the windows each rule has fired on,
``windows/trace_links.pyx`` keeps the newest trace entries of panes and
windows, ``windows/pane_index.pyx`` finds the slot of a pane,
``windows/pane_spans.pyx`` finds which tumbling and hopping windows close, and which of their panes,
``windows/radix_sort.pyx`` sorts the engine's packed sort keys,
``windows/emission_runs.pyx`` cuts an emission order into runs of one chunk,
``windows/sketch_counts.pyx`` adds, merges and reads quantile sketches' bucket counts,
``windows/sliding_points.pyx`` searches sliding windows' points and derives their windows,
``state/pane_encoding.pyx`` encodes the pane values a commit writes to RocksDB,
``connectors/event_scan.pyx`` finds a log's lines and reads a job's fields straight out of events' JSON bytes,
``connectors/key_table.pyx`` holds the ids of event keys by their UTF-8 text, where the scan looks them up,
``connectors/event_fields.pyx`` takes them out of decoded events (when the scan declines),
``connectors/line_gather.pyx`` reorders packed output lines and writes merged ones,
``connectors/line_source.pyx`` is the base of the rows that write their own lines later,
``connectors/file_space.pyx`` reserves an output file's disk blocks ahead of its writes,
``connectors/partitioner.pyx`` is Kafka's default partitioner (murmur2),
``connectors/record_batches.pyx`` builds Kafka record batches from them,
``connectors/record_reading.pyx`` reads fetched record batches into columns,
``connectors/record_columns.pyx`` reads the values, offsets and trace headers of fetched record objects,
``connectors/trace_ids.pyx`` reads trace ids from ``traceparent`` headers or derives them
from the event's bytes with ``connectors/blake2b.pyx`` (which the line writer uses too); setuptools
hands them to Cython (a build requirement) and the C compiler.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # -fwrapv: signed arithmetic wraps as numpy's does (the time loops rely on it; CPython's own flags
        # carry it too, but not every build's)
        Extension(name, [name.replace(".", "/") + ".pyx"], extra_compile_args=["-O3", "-fwrapv"])
        for name in (
            "connectors.blake2b",
            "connectors.event_fields",
            "connectors.event_scan",
            "connectors.file_space",
            "connectors.key_table",
            "connectors.line_gather",
            "connectors.line_source",
            "connectors.partitioner",
            "connectors.record_batches",
            "connectors.record_columns",
            "connectors.record_reading",
            "connectors.trace_ids",
            "jobs.fired_marks",
            "jobs.line_encoding",
            "state.pane_encoding",
            "windows.emission_runs",
            "windows.pane_index",
            "windows.pane_spans",
            "windows.radix_sort",
            "windows.sketch_counts",
            "windows.sliding_points",
            "windows.trace_links",
        )
    ]
)
