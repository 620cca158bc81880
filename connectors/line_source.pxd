# Rows that write their own JSON lines into a ``line_buffer.Buffer`` (see line_source.pyx).
from connectors.line_buffer cimport Buffer


cdef class LineSource:
    cdef readonly Py_ssize_t count  # rows
    cdef readonly Py_ssize_t row_bytes  # about the memory one row's columns take while its line is unwritten
    cdef readonly Py_ssize_t line_bytes  # about the length of one row's line
    cdef object _lines  # (text, offsets) of every row, once written as a block

    cdef int write_row(self, Buffer* b, Py_ssize_t row) except -1
