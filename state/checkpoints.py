"""Incremental checkpoints of partition stores: upload, retention, verification, restore.

A checkpoint is a RocksDB checkpoint of one partition store (hard links to its
immutable SST files plus a few small metadata files) described by a manifest.
Files are stored content-addressed (``name.<sha256 prefix>``), so an SST file
already in the checkpoint location is referenced again rather than copied: a
checkpoint after a small change uploads only the new SST files and the small
metadata files.

Layout under the checkpoint location::

    <job>/partition-<p>/files/<file name>.<sha256[:16]>
    <job>/partition-<p>/manifests/<sequence:010d>.json

A manifest is written last, atomically, after every file it lists is stored:
a crash mid-upload leaves files no manifest lists (removed later) and never a
manifest that points at missing files. Restore verifies sizes and SHA-256
checksums while copying and falls back to the previous checkpoint when the
newest is damaged.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from state.checkpoint_storage import CheckpointStorage
from state.errors import StateError
from windows.errors import reason

log = logging.getLogger("winnow.checkpoints")

MANIFEST_FORMAT = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CheckpointFile:
    """One file of a checkpoint: its name in the RocksDB directory and its stored object."""

    name: str
    object: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What one checkpoint holds and reflects."""

    job: str
    fingerprint: str
    partition: int
    sequence: int
    created_at: float  # epoch seconds
    position: int | None  # next source offset the state reflects (None: nothing read yet)
    rule_revision: int | None
    files: tuple[CheckpointFile, ...]
    uploaded_files: int
    uploaded_bytes: int

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def ident(self) -> str:
        return f"{self.job}/partition-{self.partition}/{self.sequence}"

    def to_json(self) -> bytes:
        data = asdict(self)
        data["format"] = MANIFEST_FORMAT
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Manifest:
        try:
            data: dict[str, Any] = orjson.loads(raw)
            if data.pop("format") != MANIFEST_FORMAT:
                raise ValueError("unknown manifest format")
            data["files"] = tuple(CheckpointFile(**f) for f in data["files"])
            return cls(**data)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise StateError(f"checkpoint manifest {where} is unreadable: {reason(error)}.") from None


def file_digest(path: Path) -> str:
    """SHA-256 of a local file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Checkpoints:
    """The checkpoints of one job in one storage location."""

    def __init__(self, storage: CheckpointStorage, job: str, fingerprint: str, retention: int = 3) -> None:
        if retention < 1:
            raise StateError(f"checkpoint retention must keep at least 1 checkpoint, got {retention}.")
        self.storage = storage
        self.job = job
        self.fingerprint = fingerprint
        self.retention = retention
        # SST files never change once written: their digests are computed once per process
        self._digests: dict[tuple[str, int, int], str] = {}

    def _prefix(self, partition: int) -> str:
        return f"{self.job}/partition-{partition}/"

    # ---- reading -----------------------------------------------------------------------
    def partitions(self) -> list[int]:
        """Partitions with at least one complete checkpoint."""
        found = set()
        for name in self.storage.names(f"{self.job}/"):
            parts = name.split("/")
            if len(parts) == 4 and parts[2] == "manifests" and parts[1].startswith("partition-"):
                found.add(int(parts[1].removeprefix("partition-")))
        return sorted(found)

    def manifests(self, partition: int) -> list[Manifest]:
        """Complete checkpoints of ``partition``, oldest first."""
        result = []
        for name in self.storage.names(f"{self._prefix(partition)}manifests/"):
            with self.storage.open(name) as handle:
                result.append(Manifest.from_json(handle.read(), f"{self.storage.describe()}/{name}"))
        return sorted(result, key=lambda m: m.sequence)

    def latest(self, partition: int) -> Manifest | None:
        manifests = self.manifests(partition)
        return manifests[-1] if manifests else None

    def verify(self, manifest: Manifest, *, checksums: bool = True) -> list[str]:
        """Problems found in a checkpoint's stored files (empty when it is intact)."""
        problems = []
        if manifest.fingerprint != self.fingerprint:
            problems.append(f"it belongs to a job of another shape (fingerprint {manifest.fingerprint})")
        for f in manifest.files:
            size = self.storage.size(f.object)
            if size is None:
                problems.append(f"{f.name}: missing ({f.object})")
            elif size != f.size:
                problems.append(f"{f.name}: {size} bytes stored, {f.size} expected")
            elif checksums:
                digest = hashlib.sha256()
                with self.storage.open(f.object) as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                if digest.hexdigest() != f.sha256:
                    problems.append(f"{f.name}: checksum mismatch")
        return problems

    # ---- writing -----------------------------------------------------------------------
    def _digest(self, path: Path) -> str:
        stat = path.stat()
        if path.suffix != ".sst":
            return file_digest(path)
        key = (path.name, stat.st_size, stat.st_ino)
        digest = self._digests.get(key)
        if digest is None:
            digest = self._digests[key] = file_digest(path)
        return digest

    def upload(
        self,
        partition: int,
        local_dir: Path,
        position: int | None,
        rule_revision: int | None = None,
        on_file: Callable[[str], None] | None = None,
    ) -> Manifest:
        """Store the RocksDB checkpoint in ``local_dir``; write its manifest last; retire old ones."""
        prefix = self._prefix(partition)
        previous = self.latest(partition)
        files = []
        uploaded_files = uploaded_bytes = 0
        for path in sorted(local_dir.iterdir()):
            if not path.is_file():
                continue
            size = path.stat().st_size
            digest = self._digest(path)
            name = f"{prefix}files/{path.name}.{digest[:16]}"
            if self.storage.size(name) != size:
                self.storage.put_file(name, path)
                uploaded_files += 1
                uploaded_bytes += size
            files.append(CheckpointFile(path.name, name, size, digest))
            if on_file is not None:
                on_file(path.name)
        manifest = Manifest(
            job=self.job,
            fingerprint=self.fingerprint,
            partition=partition,
            sequence=(previous.sequence + 1) if previous else 1,
            created_at=time.time(),
            position=position,
            rule_revision=rule_revision,
            files=tuple(files),
            uploaded_files=uploaded_files,
            uploaded_bytes=uploaded_bytes,
        )
        self.storage.put_bytes(f"{prefix}manifests/{manifest.sequence:010d}.json", manifest.to_json())
        self.retire(partition)
        return manifest

    def retire(self, partition: int) -> tuple[int, int]:
        """Drop checkpoints beyond the retention count and files none lists; return how many of each."""
        prefix = self._prefix(partition)
        manifests = self.manifests(partition)
        old, kept = manifests[: -self.retention], manifests[-self.retention :]
        for manifest in old:
            self.storage.delete(f"{prefix}manifests/{manifest.sequence:010d}.json")
        referenced = {f.object for m in kept for f in m.files}
        orphans = [name for name in self.storage.names(f"{prefix}files/") if name not in referenced]
        for name in orphans + self.storage.temporaries(prefix):
            self.storage.delete(name)
        return len(old), len(orphans)

    # ---- restoring ---------------------------------------------------------------------
    def restore(self, partition: int, target: Path, sequence: int | None = None) -> Manifest | None:
        """Copy the newest intact checkpoint (or ``sequence``) into ``target``, which must not exist.

        Each file is checked against its size and checksum while it is copied; a
        damaged checkpoint is skipped, with a warning, for the one before it.
        Returns the manifest restored, or None when no intact checkpoint exists.
        """
        if target.exists():
            raise StateError(f"cannot restore into {target}: it already exists.")
        candidates = self.manifests(partition)
        if sequence is not None:
            candidates = [m for m in candidates if m.sequence == sequence]
            if not candidates:
                raise StateError(f"checkpoint {self.job}/partition-{partition}/{sequence} does not exist.")
        for manifest in reversed(candidates):
            problem = self._copy(manifest, target)
            if problem is None:
                return manifest
            log.warning(
                "checkpoint %s is damaged (%s); %s",
                manifest.ident,
                problem,
                "falling back to the one before it" if manifest is not candidates[0] else "no older checkpoint left",
            )
        return None

    def _copy(self, manifest: Manifest, target: Path) -> str | None:
        if manifest.fingerprint != self.fingerprint:
            return f"it belongs to a job of another shape (fingerprint {manifest.fingerprint})"
        staging = target.with_name(target.name + ".restoring")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            for f in manifest.files:
                if self.storage.size(f.object) != f.size:
                    return f"{f.name}: missing or of the wrong size"
                digest = hashlib.sha256()
                with self.storage.open(f.object) as source, open(staging / f.name, "wb") as out:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != f.sha256:
                    return f"{f.name}: checksum mismatch"
            staging.rename(target)
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
