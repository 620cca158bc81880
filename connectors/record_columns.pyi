"""Types of the compiled ``connectors.record_columns`` (see record_columns.pyx)."""

from typing import Any

def record_columns(
    records: list[Any], traced: bool
) -> tuple[list[bytes], list[int], list[bytes | None] | None, list[int] | None]: ...
