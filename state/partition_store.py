"""One RocksDB database per input partition, written one atomic batch at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from rocksdict import BlockBasedOptions, Cache, Checkpoint, Options, Rdict, ReadOptions, WriteBatch

from state.errors import StateError
from state.key_encoding import meta_key, pane_key
from windows.stream_time import NO_TIME

#: Size of one RocksDB memtable of a partition store (at most two per store are kept in memory).
WRITE_BUFFER_BYTES = 16 << 20
#: RocksDB asks the kernel to start writing a table or log file out after every this many bytes written.
SYNC_EVERY_BYTES = 1 << 20
#: RocksDB block cache shared by every partition store of the process (data, index and filter blocks).
BLOCK_CACHE_BYTES = 32 << 20
_BLOCK_CACHE = Cache(BLOCK_CACHE_BYTES)


def set_block_cache(capacity: int) -> None:
    """Resize the shared block cache (the memory governor shrinks it at pressure)."""
    _BLOCK_CACHE.set_capacity(capacity)


def _table_options() -> BlockBasedOptions:
    table = BlockBasedOptions()
    table.set_block_cache(_BLOCK_CACHE)
    table.set_cache_index_and_filter_blocks(True)  # bounded by the cache, not one more per file
    table.set_bloom_filter(10, False)  # point reads of absent panes (evicted-state lookups) skip files
    return table


@dataclass(frozen=True)
class CommitStats:
    """What one commit wrote."""

    panes_written: int
    panes_deleted: int
    bytes_written: int  # keys and values put, and metadata
    key_bytes_deleted: int = 0  # keys of the deletions


#: Fills a write batch through its ``put`` and ``delete``, and says what it handed them.
BatchFill = Callable[[Callable[[bytes, bytes], object], Callable[[bytes], object]], CommitStats]


@dataclass(frozen=True)
class PreparedCommit:
    """A filled write batch of one partition store, to be written in one piece (``PartitionStore.write``)."""

    store: PartitionStore
    batch: WriteBatch
    stats: CommitStats  # what it writes
    deleted_below: Mapping[int, int]  # per window index, where its range deletion ends


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key after every key starting with ``prefix`` (None: no such key, all bytes are 0xff)."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes((stripped[-1] + 1,)) if stripped else None


class PartitionStore:
    """The window state and source position of one input partition.

    Everything one processed batch changes (pane puts, pane deletions and
    metadata such as the source offset) goes into one ``WriteBatch``, so the
    offset on disk always matches the state on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        # memtables are the store's main use of memory: keep them small (the governor flushes them at pressure)
        options.set_write_buffer_size(WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        options.set_block_based_table_factory(_table_options())
        # have the kernel write files out as they grow: unwritten page cache counts against a memory cgroup's
        # limit and cannot be dropped until it reaches the disk
        options.set_bytes_per_sync(SYNC_EVERY_BYTES)
        options.set_wal_bytes_per_sync(SYNC_EVERY_BYTES)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = Rdict(str(path), options)
        except Exception as error:  # rocksdict raises plain Exceptions
            raise StateError(f"cannot open window state at {path}: {error}") from None
        self._closed = False
        # per window index, the pane start below which this process deleted the window's panes as one key
        # range (``engine_state.persist``); from the window's first key when absent
        self.deleted_below: dict[int, int] = {}

    def meta(self, name: str) -> bytes | None:
        """A metadata value, or None when absent."""
        value = self._db.get(meta_key(name))
        return value if value is None else bytes(value)

    def commit(
        self,
        puts: Iterable[tuple[bytes, bytes]],
        deletes: Iterable[bytes],
        meta: Mapping[str, bytes],
    ) -> CommitStats:
        """Write deletions, then puts, then metadata atomically; return what was written.

        Puts and deletions may be generators: each goes into the write batch as it comes, so a caller
        that encodes them a chunk at a time holds no list of every change beside the batch.
        """

        def fill(put: Callable[[bytes, bytes], object], delete: Callable[[bytes], object]) -> CommitStats:
            deleted = deleted_bytes = stored = written = 0
            for key in deletes:
                delete(key)
                deleted += 1
                deleted_bytes += len(key)
            for key, value in puts:
                put(key, value)
                written += len(key) + len(value)
                stored += 1
            return CommitStats(stored, deleted, written, deleted_bytes)

        return self.write(self.prepare(fill, meta, {}))

    def prepare(self, fill: BatchFill, meta: Mapping[str, bytes], released_below: Mapping[int, int]) -> PreparedCommit:
        """Fill a write batch, not written yet (``write`` does): per window index of ``released_below``, a
        deletion of its panes starting from where the last range written ended up to that pane start; then
        what ``fill`` hands the batch's ``put`` and ``delete`` (deletions first: a pane deleted and put again
        must stay); then metadata. ``fill`` returns what it handed over."""
        batch = WriteBatch(raw_mode=True)
        range_bytes = 0
        reached: dict[int, int] = {}
        for window, below in released_below.items():
            start = self.deleted_below.get(window, NO_TIME)
            if below > start:
                begin, end = pane_key(window, start, b""), pane_key(window, below, b"")
                batch.delete_range(begin, end)
                range_bytes += len(begin) + len(end)
                reached[window] = below
        filled = fill(batch.put, batch.delete)
        written = filled.bytes_written
        for name, value in meta.items():
            batch.put(meta_key(name), value)
            written += len(value)
        stats = CommitStats(filled.panes_written, filled.panes_deleted, written, filled.key_bytes_deleted + range_bytes)
        return PreparedCommit(self, batch, stats, reached)

    def write(self, prepared: PreparedCommit) -> CommitStats:
        """Write a prepared batch atomically (batches of one store in the order they were prepared); return
        what it wrote."""
        assert prepared.store is self, "a prepared commit is written to the store it was prepared for"
        try:
            self._db.write(prepared.batch)
        except Exception as error:
            raise StateError(f"cannot write window state at {self.path}: {error}") from None
        self.deleted_below.update(prepared.deleted_below)
        return prepared.stats

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with ``prefix``, in key order."""
        return self.scan_range(prefix, prefix_end(prefix))

    def scan_range(self, lower: bytes, upper: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) with ``lower <= key < upper`` (no upper bound: None), in key order."""
        read = ReadOptions()
        if upper is not None:
            read.set_iterate_upper_bound(upper)
        iterator = self._db.iter(read)
        iterator.seek(lower)
        while iterator.valid():
            yield bytes(iterator.key()), bytes(iterator.value())
            iterator.next()

    def first_and_last(self, prefix: bytes) -> tuple[bytes, bytes] | None:
        """The first and last keys starting with ``prefix``, or None when there are none."""
        upper = prefix_end(prefix)
        iterator = self._db.iter(ReadOptions())
        iterator.seek(prefix)
        if not iterator.valid() or not bytes(iterator.key()).startswith(prefix):
            return None
        first = bytes(iterator.key())
        if upper is None:
            iterator.seek_to_last()
        else:
            iterator.seek_for_prev(upper)
            if iterator.valid() and bytes(iterator.key()) >= upper:
                iterator.prev()
        return first, bytes(iterator.key())

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The values of ``keys`` (None where absent), in one multi-get."""
        try:
            values: list[Any] = self._db.get(cast(list[Any], keys)) or []
        except Exception as error:
            raise StateError(f"cannot read window state at {self.path}: {error}") from None
        return [None if value is None else bytes(value) for value in values]

    def count(self, prefix: bytes) -> int:
        """Number of keys under ``prefix``."""
        return sum(1 for _ in self.scan(prefix))

    def flush(self) -> None:
        """Write the memtables to disk files (their memory is released)."""
        try:
            self._db.flush(True)
        except Exception as error:
            raise StateError(f"cannot flush window state at {self.path}: {error}") from None

    def size_bytes(self) -> int:
        """Bytes of state: live files on disk plus memtables."""
        total = 0
        for name in ("rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"):
            total += self._db.property_int_value(name) or 0
        return total

    def checkpoint(self, path: Path) -> None:
        """Write a RocksDB checkpoint of this store to ``path`` (new): hard links to its SST files."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            Checkpoint(self._db).create_checkpoint(str(path))
        except Exception as error:
            raise StateError(f"cannot checkpoint window state at {self.path} into {path}: {error}") from None

    def close(self) -> None:
        """Flush and close the database."""
        if not self._closed:
            self._db.close()
            self._closed = True
