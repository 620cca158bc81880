"""Where checkpoints are kept: a small storage interface and its local-directory implementation.

Objects are named by relative POSIX paths. Every write is atomic (a reader
sees the whole object or nothing): the local implementation writes a hidden
temporary file next to the target and renames it. An object store (S3, GCS)
fits the same interface, since its PUTs are atomic too.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from state.errors import StateError
from windows.errors import reason


class CheckpointStorage(Protocol):
    """The operations checkpoints need from a storage location."""

    def put_file(self, name: str, source: Path) -> None:
        """Store a copy of the local file ``source`` as ``name``, atomically."""

    def put_bytes(self, name: str, data: bytes) -> None:
        """Store ``data`` as ``name``, atomically."""

    def open(self, name: str) -> BinaryIO:
        """Open ``name`` for reading."""

    def size(self, name: str) -> int | None:
        """Size of ``name`` in bytes, or None when it does not exist."""

    def names(self, prefix: str) -> list[str]:
        """Names starting with ``prefix``, sorted (temporary objects of unfinished writes excluded)."""

    def temporaries(self, prefix: str) -> list[str]:
        """Leftovers under ``prefix`` of writes that never finished (a crash mid-upload)."""

    def delete(self, name: str) -> None:
        """Remove ``name`` if it exists."""

    def describe(self) -> str:
        """Where this storage is, for messages."""


TEMP_MARK = ".tmp-"


class LocalCheckpointStorage:
    """Checkpoints in a local or mounted directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in Path(name).parts:
            raise StateError(f"checkpoint object name {name!r} is not a relative path inside the checkpoint location.")
        return self.root / name

    def _temp(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.parent / f"{TEMP_MARK}{target.name}.{uuid.uuid4().hex}"

    def put_file(self, name: str, source: Path) -> None:
        target = self._path(name)
        temp = self._temp(target)
        try:
            shutil.copyfile(source, temp)
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise StateError(f"cannot store checkpoint file {name} in {self.root}: {reason(error)}.") from None

    def put_bytes(self, name: str, data: bytes) -> None:
        target = self._path(name)
        temp = self._temp(target)
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except OSError as error:
            temp.unlink(missing_ok=True)
            raise StateError(f"cannot store checkpoint object {name} in {self.root}: {reason(error)}.") from None

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except OSError as error:
            raise StateError(f"cannot read checkpoint object {name} in {self.root}: {error.strerror}.") from None

    def size(self, name: str) -> int | None:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            return None

    def _walk(self, base: Path) -> Iterator[Path]:
        if base.is_dir():
            for entry in base.rglob("*"):
                if entry.is_file() and not entry.name.startswith(TEMP_MARK):
                    yield entry

    def names(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        start = base if prefix.endswith("/") or not prefix else base.parent
        names = (entry.relative_to(self.root).as_posix() for entry in self._walk(start))
        return sorted(name for name in names if name.startswith(prefix))

    def temporaries(self, prefix: str) -> list[str]:
        """Leftovers of writes that never finished (a crash mid-upload)."""
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        return sorted(
            entry.relative_to(self.root).as_posix() for entry in base.rglob(f"{TEMP_MARK}*") if entry.is_file()
        )

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.root)
