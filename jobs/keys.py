"""Interning of event keys: string keys become dense integer ids for the engine."""

from __future__ import annotations

from hashlib import blake2b

import numpy as np
import orjson

from connectors.key_table import KeyTable
from connectors.partitioner import partitions_for
from windows.events import Int64Array

#: Up to this many keys, ``KeyRegistry.ranks`` gives dense ranks instead of hashes.
DENSE_RANK_KEYS = 1 << 16


class KeyRegistry:
    """Maps event keys to integer ids and back, with each key's partition and JSON form."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.table = KeyTable()  # each key's id by its UTF-8 text (the decoder looks keys up in it)
        self.utf8: list[bytes] = []  # each key's UTF-8 bytes
        self.json: list[bytes] = []  # each key as JSON text
        self._partition = np.zeros(1024, dtype=np.int64)
        self._partitioned = 0  # keys below this id have their partition computed
        self._hashes = np.zeros(1024, dtype=np.int64)  # each key's hash
        self._hashed = 0  # keys below this id have their hash computed
        self._dense = np.zeros(0, dtype=np.int64)  # the dense rank of each key ranked so far
        self._distinct = np.zeros(0, dtype=np.int64)  # their distinct hashes, ascending

    def __len__(self) -> int:
        return len(self.utf8)

    def _add(self, key: bytes) -> int:
        """Register ``key`` (UTF-8 text, not registered yet); return its id."""
        # orjson's bytes keep a 4 KiB buffer; a copy through str holds only the text (and a key that is not
        # UTF-8 fails here, before the table holds it)
        json = orjson.dumps(key.decode("utf-8")).decode().encode()
        if len(self.table) != len(self.utf8):
            raise AssertionError(f"the key table holds {len(self.table)} keys and the registry {len(self.utf8)}")
        key_id = self.table.add(key)
        self.utf8.append(key)
        self.json.append(json)
        return key_id

    def ids(self, keys: list[str] | list[str | None], found: Int64Array | None = None) -> Int64Array:
        """Ids of ``keys``, registering new ones (in their order of first occurrence). With ``found``, the
        ids the decoder found in ``table`` already, -1 where ``keys`` holds the key's text instead."""
        if found is None:
            ids, missing = self.table.ids(keys)  # type: ignore[arg-type]  # every key is a string here
        else:
            ids, missing = found, int(np.count_nonzero(found < 0))
        if missing:
            lookup, add = self.table.lookup, self._add
            for i in np.flatnonzero(ids < 0).tolist():
                text = keys[i]
                if text is None:
                    raise ValueError(f"event {i} of the batch has neither a key id nor a key.")
                key = text.encode("utf-8")
                known = lookup(key)  # registered by an earlier event of the batch
                ids[i] = known if known >= 0 else add(key)
        return ids

    def id_of(self, key: bytes) -> int:
        """Id of a key given as UTF-8 bytes, registering it if new."""
        found = self.table.lookup(key)
        return found if found >= 0 else self._add(key)

    def key_bytes(self, key_id: int) -> bytes:
        """The UTF-8 bytes of a key id."""
        return self.utf8[key_id]

    def ids_of(self, keys: list[bytes]) -> list[int]:
        """Ids of keys given as UTF-8 bytes, registering new ones (bulk ``id_of``)."""
        return [self.id_of(raw) for raw in keys]

    def partitions_of(self, ids: Int64Array) -> Int64Array:
        """Kafka default-partitioner partition of each key id (computed once per key, when first asked)."""
        if self._partitioned < len(self):
            self._partition = self._extended(self._partition, self._partitioned)
            self._partition[self._partitioned : len(self)] = partitions_for(
                self.utf8[self._partitioned :], self.partitions
            )
            self._partitioned = len(self)
        return self._partition[ids]

    def ranks(self, ids: Int64Array) -> Int64Array:
        """Each key's place in the output order: the order of a 64-bit hash of its text, the same in every
        run and process however ids were handed out (computed once per key, when first asked).

        Up to ``DENSE_RANK_KEYS`` keys, a key's rank is the number of distinct hashes below its own, so
        ranks take few bits and the emission sort packs them with the other columns (``lex_order``);
        beyond, the hash itself. Either orders keys the same way."""
        if self._hashed < len(self):
            self._hashes = self._extended(self._hashes, self._hashed)
            self._hashes[self._hashed : len(self)] = [
                int.from_bytes(blake2b(key, digest_size=8).digest(), "big", signed=True)
                for key in self.utf8[self._hashed :]
            ]
            self._hashed = len(self)
        if self._hashed > DENSE_RANK_KEYS:
            return self._hashes[ids]
        if self._dense.shape[0] != self._hashed:
            self._rank_new_keys()
        return self._dense[ids]

    def _rank_new_keys(self) -> None:
        """Dense ranks for the keys hashed since the last ranking; the ranks of earlier keys move up by the
        number of new distinct hashes below theirs (a pass over the keys, no sort of them all)."""
        hashes = self._hashes[: self._hashed]
        ranked = self._dense.shape[0]
        distinct = self._distinct
        # the distinct new hashes, by a sort (``np.unique`` takes a hash path here whose first call costs 10 ms)
        new = np.sort(hashes[ranked:])
        if new.shape[0]:
            new = new[np.concatenate([[True], new[1:] != new[:-1]])]
        at = np.searchsorted(distinct, new)
        known = np.zeros(new.shape[0], dtype=bool)
        inside = at < distinct.shape[0]
        known[inside] = distinct[at[inside]] == new[inside]
        fresh, places = new[~known], at[~known]  # new distinct hashes, and how many known ones are below each
        # a key of rank r has the new hashes placed at r or below it beneath its own
        below = np.cumsum(np.bincount(places, minlength=distinct.shape[0] + 1))
        old = self._dense + below[self._dense]
        self._distinct = np.insert(distinct, places, fresh)
        self._dense = np.concatenate([old, np.searchsorted(self._distinct, hashes[ranked:])])

    def _extended(self, array: Int64Array, filled: int) -> Int64Array:
        if len(self) <= array.shape[0]:
            return array
        grown = np.zeros(max(len(self), 2 * array.shape[0]), dtype=np.int64)
        grown[:filled] = array[:filled]
        return grown

    def compact(self, in_use: Int64Array) -> Int64Array:
        """Forget every key not in ``in_use`` and renumber the rest densely; return old id -> new id (-1: gone)."""
        keep = np.unique(in_use)
        mapping = np.full(len(self), -1, dtype=np.int64)
        mapping[keep] = np.arange(keep.shape[0], dtype=np.int64)
        kept = keep.tolist()
        utf8 = [self.utf8[i] for i in kept]
        table = KeyTable()  # built aside: a failure on the way leaves the registry as it was
        for key in utf8:
            table.add(key)
        self.utf8, self.json, self.table = utf8, [self.json[i] for i in kept], table
        # ids are renumbered in order, so the keys with a computed partition and hash stay a prefix
        partitioned = int(np.searchsorted(keep, self._partitioned))
        self._partition = self._partition[keep[:partitioned]]
        self._partitioned = partitioned
        hashed = int(np.searchsorted(keep, self._hashed))
        self._hashes = self._hashes[keep[:hashed]]
        self._hashed = hashed
        self._dense = np.zeros(0, dtype=np.int64)
        self._distinct = np.zeros(0, dtype=np.int64)
        return mapping
