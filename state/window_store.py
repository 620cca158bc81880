"""The window state of one job: a directory with one RocksDB store per input partition."""

from __future__ import annotations

import shutil
from pathlib import Path

from state.errors import StateError
from state.partition_store import PartitionStore

FINGERPRINT_META = "fingerprint"


class WindowStore:
    """Opens and tracks the partition stores of one job under ``root``.

    Every partition store records the job's state fingerprint when created;
    opening one written for a differently shaped job is refused rather than
    misread.
    """

    def __init__(self, root: Path, fingerprint: str) -> None:
        self.root = root
        self.fingerprint = fingerprint
        self._open: dict[int, PartitionStore] = {}

    def partition(self, partition: int) -> PartitionStore:
        """The store of ``partition``, opened (and created) on first use."""
        store = self._open.get(partition)
        if store is not None:
            return store
        store = PartitionStore(self.root / f"partition-{partition}")
        stored = store.meta(FINGERPRINT_META)
        if stored is None:
            store.commit([], [], {FINGERPRINT_META: self.fingerprint.encode()})
        elif stored.decode() != self.fingerprint:
            store.close()
            raise StateError(
                f"state in {store.path} belongs to a job with a different shape (fingerprint "
                f"{stored.decode()}, this job {self.fingerprint}); point --state-dir elsewhere or delete it."
            )
        self._open[partition] = store
        return store

    def release(self, partition: int) -> None:
        """Close a partition's store (e.g. when the partition is revoked)."""
        store = self._open.pop(partition, None)
        if store is not None:
            store.close()

    def flush(self) -> None:
        """Write every open store's memtables to disk files, freeing their memory."""
        for store in self._open.values():
            store.flush()

    def close(self) -> None:
        """Close every open partition store."""
        for partition in list(self._open):
            self.release(partition)

    @staticmethod
    def wipe(root: Path) -> None:
        """Delete all state under ``root``."""
        if root.exists():
            shutil.rmtree(root)
