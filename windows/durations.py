"""Parse human-written durations ("60s", "5m", "250ms") into integer milliseconds."""

from __future__ import annotations

import re

from windows.errors import SpecError

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")


def parse_duration_ms(value: object, *, field: str) -> int:
    """Return ``value`` as whole milliseconds; integers are taken as milliseconds already.

    Raises ``SpecError`` naming ``field`` when the value is not a non-negative
    whole number of a known unit (ms, s, m, h, d).
    """
    if isinstance(value, bool):
        raise SpecError(f"{field}: expected a duration such as '30s', got {value!r}.")
    if isinstance(value, int):
        if value < 0:
            raise SpecError(f"{field}: a duration cannot be negative, got {value}.")
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNITS_MS[match.group(2)]
    raise SpecError(f"{field}: expected a duration such as '250ms', '30s', '5m', '1h' or '1d', got {value!r}.")
