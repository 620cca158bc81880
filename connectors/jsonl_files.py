"""JSON Lines files: reading event logs in chunks, and writing replay output deterministically."""

from __future__ import annotations

import gzip
import io
import shutil
from array import array
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO

import numpy as np

from connectors.errors import ConnectorError
from connectors.event_decoding import LateRecord, Rejected
from windows.errors import reason


def open_event_log(path: Path) -> IO[bytes]:
    """Open a ``.jsonl`` or ``.jsonl.gz`` event log for binary reading."""
    try:
        if path.suffix == ".gz":
            return io.BufferedReader(gzip.open(path, "rb"), buffer_size=1 << 20)  # type: ignore[arg-type]
        return open(path, "rb", buffering=1 << 20)
    except OSError as error:
        raise ConnectorError(f"cannot open event log {path}: {error.strerror or error}.") from None


def read_event_chunks(path: Path, chunk_lines: int, skip_lines: int = 0) -> Iterator[tuple[list[bytes], list[int]]]:
    """Yield ``(events, line numbers)`` for each ``chunk_lines`` lines; blank lines carry no event."""
    line_no = 0
    with open_event_log(path) as handle:
        try:
            while True:
                lines = list(islice(handle, chunk_lines))
                if not lines:
                    return
                events: list[bytes] = []
                numbers: list[int] = []
                for line in lines:
                    line_no += 1
                    if line_no <= skip_lines:
                        continue
                    stripped = line.rstrip(b"\r\n")
                    if stripped.strip():
                        events.append(stripped)
                        numbers.append(line_no)
                if events:
                    yield events, numbers
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise ConnectorError(f"event log {path} is damaged after line {line_no}: {reason(error)}.") from None


class ReplayFiles:
    """The replay output directory.

    Late and rejected events are written straight to ``late.jsonl`` and
    ``rejected.jsonl`` in source order. Results, updates and decisions arrive
    per partition in emission order; they are kept in one part file per
    partition, with their emission times in memory, and merged by ``(emission
    time, partition)`` when the run finishes, so the files are identical
    whatever the batch size.
    """

    MERGED = ("results", "updates", "decisions")

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.parts_dir = out_dir / ".parts"
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            if self.parts_dir.exists():
                shutil.rmtree(self.parts_dir)
            self.parts_dir.mkdir()
            self._late = open(out_dir / "late.jsonl", "wb")
            self._rejected = open(out_dir / "rejected.jsonl", "wb")
        except OSError as error:
            raise ConnectorError(f"cannot write replay output to {out_dir}: {error.strerror or error}.") from None
        self._parts: dict[tuple[str, int], IO[str]] = {}
        self._times: dict[tuple[str, int], list[array[int]]] = {}

    def _write_timed(self, kind: str, partition: int, emitted_at: list[int], lines: list[str]) -> None:
        handle = self._parts.get((kind, partition))
        if handle is None:
            handle = open(self.parts_dir / f"{kind}-{partition}.part", "w", encoding="utf-8", buffering=1 << 20)
            self._parts[(kind, partition)] = handle
            self._times[(kind, partition)] = []
        handle.write("".join(lines))  # one encode and write per batch, not per line
        self._times[(kind, partition)].append(array("q", emitted_at))

    def results(
        self, partition: int, emitted_at: list[int], key_ids: list[int], lines: list[str], *, final: bool
    ) -> None:
        self._write_timed("results" if final else "updates", partition, emitted_at, lines)

    def decisions(
        self, partition: int, emitted_at: list[int], key_ids: list[int], lines: list[str], origins: list[int]
    ) -> None:
        self._write_timed("decisions", partition, emitted_at, lines)

    def late(self, records: list[LateRecord]) -> None:
        self._late.writelines(record.line for record in records)

    def rejected(self, partition: int | None, rejected: list[Rejected], lines: list[bytes]) -> None:
        self._rejected.writelines(lines)

    def finish(self) -> None:
        """Merge part files into the final files and remove them."""
        self._late.close()
        self._rejected.close()
        for handle in self._parts.values():
            handle.close()
        for kind in self.MERGED:
            parts = sorted(p for k, p in self._parts if k == kind)
            times = [np.concatenate([np.frombuffer(a, dtype=np.int64) for a in self._times[(kind, p)]]) for p in parts]
            source = np.repeat(np.arange(len(parts), dtype=np.int16), [t.shape[0] for t in times])
            # a stable sort of partition-major rows by time keeps partition order among equal times
            rank = np.argsort(np.concatenate(times) if times else np.zeros(0), kind="stable")
            del times
            order = source[rank]
            del rank, source
            part_files = [open(self.parts_dir / f"{kind}-{p}.part", "rb", buffering=1 << 20) for p in parts]
            try:
                with open(self.out_dir / f"{kind}.jsonl", "wb", buffering=1 << 20) as out:
                    if len(part_files) == 1:
                        shutil.copyfileobj(part_files[0], out)
                    else:
                        readers = [part.readline for part in part_files]
                        for at in range(0, order.shape[0], 65_536):
                            out.write(b"".join([readers[i]() for i in order[at : at + 65_536].tolist()]))
            finally:
                for part in part_files:
                    part.close()
        shutil.rmtree(self.parts_dir)

    def abort(self) -> None:
        """Close everything after a failure, leaving what was written for inspection."""
        self._late.close()
        self._rejected.close()
        for handle in self._parts.values():
            handle.close()
