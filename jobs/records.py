"""JSON encoding of everything Winnow emits: results, decisions, late and rejected events.

One encoding serves the replay files and the Kafka topics, so consumers see
the same fields in both. Results and decisions are written from columns
in C (``jobs/line_encoding.pyx``) as blocks of lines
(``connectors.line_blocks.LineBlock``); every value is plain JSON (numbers, strings,
null). A number is written without a fraction when it is integral and below
1e15 in magnitude, NaN as null, any other as the shortest text that reads back
to the same double.
"""

from __future__ import annotations

import base64

import numpy as np
import orjson

from connectors.line_blocks import PendingLines
from jobs import line_encoding
from windows.results import WindowResults


def value_columns(chunk: WindowResults) -> tuple[list[bytes], list[np.ndarray]]:
    """The names (as JSON text) and columns of the values users see: every value but the internal ones."""
    names = [name for name in chunk.values if not name.startswith("__")]
    return [orjson.dumps(name) for name in names], [chunk.values[name] for name in names]


def result_lines(chunk: WindowResults, job: str, partition: int, key_json: list[bytes]) -> PendingLines:
    """One JSON line per result, written when needed; ``key_json[k]`` is the JSON text of key id k."""
    head = b'{"job":%s,"window":%s,"partition":%d,"final":%s,' % (
        orjson.dumps(job),
        orjson.dumps(chunk.window),
        partition,
        b"true" if chunk.final else b"false",
    )
    names, columns = value_columns(chunk)
    return PendingLines(
        line_encoding.ResultRows(
            head, key_json, chunk.key_ids, chunk.starts, chunk.ends, chunk.emitted_at, names, columns
        )
    )


def late_line(job: str, partition: int, position_field: str, position: int, reason: str, raw: bytes) -> bytes:
    """A late event: the original event with where it was and why it was late."""
    head = orjson.dumps({"job": job, "partition": partition, position_field: position, "reason": reason})
    return head[:-1] + b',"event":' + raw.strip() + b"}\n"


def rejected_line(job: str, position_field: str, position: int, reason: str, raw: bytes) -> bytes:
    """A rejected event: the original bytes (as JSON when they are JSON) and the reason."""
    head = orjson.dumps({"job": job, position_field: position, "reason": reason})
    try:
        orjson.loads(raw)
        return head[:-1] + b',"event":' + raw.strip() + b"}\n"
    except orjson.JSONDecodeError:
        pass
    try:
        return head[:-1] + b',"raw":' + orjson.dumps(raw.decode("utf-8")) + b"}\n"
    except UnicodeDecodeError:
        return head[:-1] + b',"raw_base64":"' + base64.b64encode(raw) + b'"}\n'
