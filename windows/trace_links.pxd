# The layout of a trace entry, shared by the C modules that read trace rows (``cimport``ed by
# jobs/line_encoding.pyx); windows/pane_state.py's TraceColumn keeps the rows as numpy arrays.
from libc.stdint cimport int64_t

cdef enum:
    LINK_FIELDS = 5  # an entry: (ts, seq, origin, trace high, trace low)
    LINK_TS = 0
    LINK_SEQ = 1
    LINK_ORIGIN = 2
    LINK_HIGH = 3
    LINK_LOW = 4

cdef extern from "<stdint.h>":
    const int64_t NO_SEQ "INT64_MIN"  # the seq of an empty entry
