"""JSON encoding of everything Winnow emits: results, decisions, late and rejected events.

One encoding serves the replay files and the Kafka topics, so consumers see
the same fields in both. Records are built from columns with string
templates; every value is plain JSON (numbers, strings, null).
"""

from __future__ import annotations

import base64
import math

import numpy as np
import orjson

from windows.results import WindowResults


def format_number(value: float) -> str:
    """JSON text of a result value: integers without a fraction, NaN as null."""
    if math.isnan(value):
        return "null"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _column_text(column: np.ndarray) -> list[str]:
    """``format_number`` of every value, with the common columns (all integers, or no integer and no
    NaN) done in bulk."""
    if column.dtype.kind in "iu":
        return list(map(str, column.tolist()))
    integral = (np.trunc(column) == column) & (np.abs(column) < 1e15)
    if integral.all():
        return list(map(str, column.astype(np.int64).tolist()))
    if not integral.any() and not np.isnan(column).any():
        return list(map(repr, column.tolist()))
    return [format_number(v) for v in column.tolist()]


def values_json(chunk: WindowResults) -> list[str]:
    """The ``"values"`` object of every result in ``chunk``, as JSON text."""
    names = [name for name in chunk.values if not name.startswith("__")]
    texts = [_column_text(chunk.values[name]) for name in names]
    quoted = [orjson.dumps(name).decode() for name in names]
    if len(names) == 1:
        head = "{" + quoted[0] + ":"
        return [head + v + "}" for v in texts[0]]
    return ["{" + ",".join(q + ":" + v for q, v in zip(quoted, row)) + "}" for row in zip(*texts)]


def result_lines(chunk: WindowResults, job: str, partition: int, key_json: list[str], values: list[str]) -> list[str]:
    """One JSON line per result; ``values`` is ``values_json(chunk)``."""
    head = '{"job":%s,"window":%s,"partition":%d,"final":%s,' % (
        orjson.dumps(job).decode(),
        orjson.dumps(chunk.window).decode(),
        partition,
        "true" if chunk.final else "false",
    )
    return [
        f'{head}"key":{key_json[k]},"start":{s},"end":{e},"emitted_at":{t},"values":{v}}}\n'
        for k, s, e, t, v in zip(
            chunk.key_ids.tolist(),
            chunk.starts.tolist(),
            chunk.ends.tolist(),
            chunk.emitted_at.tolist(),
            values,
        )
    ]


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
