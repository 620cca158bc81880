"""Interning of event keys: string keys become dense integer ids for the engine."""

from __future__ import annotations

import numpy as np
import orjson

from connectors.partitioner import partition_for
from windows.events import Int64Array


class KeyRegistry:
    """Maps event keys to integer ids and back, with each key's partition and JSON form."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._ids: dict[str, int] = {}
        self.keys: list[str] = []
        self.json: list[str] = []
        self._partition = np.zeros(1024, dtype=np.int64)
        self._partitioned = 0  # keys below this id have their partition computed

    def __len__(self) -> int:
        return len(self.keys)

    def _add(self, key: str) -> int:
        key_id = len(self.keys)
        self._ids[key] = key_id
        self.keys.append(key)
        self.json.append(orjson.dumps(key).decode())
        return key_id

    def ids(self, keys: list[str]) -> Int64Array:
        """Ids of ``keys``, registering new ones."""
        get = self._ids.get
        ids = [get(k) for k in keys]
        if None in ids:
            ids = [
                i if i is not None else (self._ids.get(k) if k in self._ids else self._add(k))
                for i, k in zip(ids, keys)
            ]
        return np.asarray(ids, dtype=np.int64)

    def id_of(self, key: bytes) -> int:
        """Id of a key given as UTF-8 bytes, registering it if new."""
        text = key.decode("utf-8")
        found = self._ids.get(text)
        return found if found is not None else self._add(text)

    def key_bytes(self, key_id: int) -> bytes:
        """The UTF-8 bytes of a key id."""
        return self.keys[key_id].encode("utf-8")

    def ids_of(self, keys: list[bytes]) -> list[int]:
        """Ids of keys given as UTF-8 bytes, registering new ones (bulk ``id_of``)."""
        get, add = self._ids.get, self._add
        ids = []
        for raw in keys:
            text = raw.decode("utf-8")
            found = get(text)
            ids.append(found if found is not None else add(text))
        return ids

    def partitions_of(self, ids: Int64Array) -> Int64Array:
        """Kafka default-partitioner partition of each key id (computed once per key, when first asked)."""
        count = len(self.keys)
        if self._partitioned < count:
            if count > self._partition.shape[0]:
                grown = np.zeros(max(count, 2 * self._partition.shape[0]), dtype=np.int64)
                grown[: self._partitioned] = self._partition[: self._partitioned]
                self._partition = grown
            self._partition[self._partitioned : count] = [
                partition_for(key.encode("utf-8"), self.partitions) for key in self.keys[self._partitioned : count]
            ]
            self._partitioned = count
        return self._partition[ids]
