# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Output lines not written yet: rows of columns that write their own JSON line on demand.

A replay holds a batch's output until every partition has passed its emission
times, then merges the partitions' lines by time into the files
(``connectors.jsonl_files``). Written as soon as they are made, the lines of a
batch (tens of megabytes) are out of the CPU's caches by the time the merge
copies them into its write buffer. Held as columns instead, they are written
by the merge (``line_gather.write_merged``) a stretch at a time into a small
buffer that stays in the caches, and copied from there. Sinks that want the
text at once (Kafka) ask for it (``lines``), which writes every row once, as a
block.

``jobs/line_encoding.pyx`` has the sources: result rows and decision rows.
"""

from cpython.bytes cimport PyBytes_AS_STRING
from libc.stdint cimport int64_t

from connectors.line_buffer cimport Buffer, check_offsets, lines_free, lines_init, lines_taken, put

import numpy as np


cdef class LineSource:
    """Rows ``0 .. count - 1``, each of which writes one line (ending in a line break) with ``write_row``."""

    cdef int write_row(self, Buffer* b, Py_ssize_t row) except -1:
        raise NotImplementedError("a line source writes its rows")

    def __len__(self):
        return self.count

    def lines(self):
        """Every row's line, written once into one buffer (and kept): ``(text, offsets)``, the ``count + 1``
        offsets where the lines start (the text's length last)."""
        if self._lines is None:
            self._lines = self.lines_of(0, self.count)
        return self._lines

    def lines_of(self, Py_ssize_t first, Py_ssize_t stop):
        """The lines of rows ``[first, stop)``, written into a new buffer (not kept), as ``lines`` gives them."""
        if first < 0 or stop < first or stop > self.count:
            raise ValueError(f"rows {first} to {stop} are not among the {self.count} of a source.")
        cdef Buffer text
        cdef Py_ssize_t row
        offsets_array = np.zeros(stop - first + 1, dtype=np.int64)
        cdef int64_t[::1] offsets = offsets_array
        lines_init(&text, self.line_bytes * (stop - first) + 64)
        try:
            for row in range(first, stop):
                self.write_row(&text, row)
                offsets[row - first + 1] = text.size
            return lines_taken(&text), offsets_array
        finally:
            lines_free(&text)


cdef class WrittenRows(LineSource):
    """Rows whose lines are written already: line ``i`` is ``text[offsets[i]:offsets[i + 1]]`` (each ending in
    its line break). A source like any other, for tools and tests."""

    cdef bytes text
    cdef object offsets_array
    cdef const int64_t[::1] offsets

    def __cinit__(self, bytes text not None, offsets):
        self.offsets_array = np.ascontiguousarray(offsets, dtype=np.int64)
        self.offsets = self.offsets_array
        check_offsets(text, self.offsets)
        self.text = text
        self.count = self.offsets.shape[0] - 1
        self.row_bytes = (self.offsets[self.count] - self.offsets[0]) // max(self.count, 1) + 8
        self.line_bytes = self.row_bytes

    cdef int write_row(self, Buffer* b, Py_ssize_t row) except -1:
        if row < 0 or row >= self.count:
            raise IndexError(f"row {row} is not among the {self.count} rows.")
        return put(b, PyBytes_AS_STRING(self.text) + self.offsets[row], self.offsets[row + 1] - self.offsets[row])
