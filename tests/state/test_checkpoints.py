"""Incremental checkpoints with real RocksDB files: sharing, restore, damage, crashes, retention."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from state.checkpoint_storage import LocalCheckpointStorage
from state.checkpoints import Checkpoints
from state.partition_store import PartitionStore

ROOT = Path(__file__).resolve().parents[2]
KEYS = 200_000


def fill(store: PartitionStore, keys: range, version: bytes, position: int) -> None:
    store.commit([(b"P%09d" % i, version * 24) for i in keys], [], {"position": str(position).encode()})


def contents(path: Path) -> dict[bytes, bytes]:
    store = PartitionStore(path)
    try:
        return dict(store.scan(b""))
    finally:
        store.close()


def take(store: PartitionStore, checkpoints: Checkpoints, work: Path, name: str) -> object:
    local = work / name
    store.checkpoint(local)
    position = store.meta("position")
    return checkpoints.upload(0, local, int(position) if position else None)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[PartitionStore, Checkpoints, Path]:
    store = PartitionStore(tmp_path / "state" / "partition-0")
    checkpoints = Checkpoints(LocalCheckpointStorage(tmp_path / "checkpoints"), "job", "fp", retention=3)
    return store, checkpoints, tmp_path


def test_a_second_checkpoint_after_a_small_change_uploads_only_the_new_files(setup) -> None:  # type: ignore[no-untyped-def]
    store, checkpoints, work = setup
    fill(store, range(KEYS), b"a", 100)
    first = take(store, checkpoints, work, "c1")
    fill(store, range(0, KEYS, 100), b"b", 200)  # 1% of the keys change
    second = take(store, checkpoints, work, "c2")
    store.close()
    assert first.position == 100 and second.position == 200  # type: ignore[attr-defined]
    assert first.uploaded_bytes == first.total_bytes > 1_000_000  # type: ignore[attr-defined]
    assert second.uploaded_bytes <= 0.05 * first.uploaded_bytes  # type: ignore[attr-defined]
    shared = {f.object for f in first.files} & {f.object for f in second.files}  # type: ignore[attr-defined]
    assert any(name.endswith(tuple(".sst." + f.sha256[:16] for f in first.files)) for name in shared)  # type: ignore[attr-defined]

    restored = work / "restored" / "partition-0"
    manifest = checkpoints.restore(0, restored)
    assert manifest is not None and manifest.sequence == 2
    data = contents(restored)
    assert len([k for k in data if k.startswith(b"P")]) == KEYS
    assert data[b"P%09d" % 0] == b"b" * 24 and data[b"P%09d" % 1] == b"a" * 24


def test_a_damaged_checkpoint_is_caught_by_verify_and_restore_falls_back(  # type: ignore[no-untyped-def]
    setup, caplog
) -> None:
    store, checkpoints, work = setup
    fill(store, range(KEYS), b"a", 100)
    first = take(store, checkpoints, work, "c1")
    fill(store, range(0, KEYS, 100), b"b", 200)
    second = take(store, checkpoints, work, "c2")
    store.close()
    own = [f for f in second.files if f.name.endswith(".sst") and f not in first.files]  # type: ignore[attr-defined]
    assert own, "the second checkpoint has an SST file of its own"
    victim = work / "checkpoints" / own[0].object
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    victim.write_bytes(bytes(data))

    assert checkpoints.verify(first) == []  # type: ignore[arg-type]
    assert checkpoints.verify(second) == [f"{own[0].name}: checksum mismatch"]  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="winnow.checkpoints"):
        manifest = checkpoints.restore(0, work / "restored")
    assert manifest is not None and manifest.sequence == 1
    assert "checkpoint job/partition-0/2 is damaged (" in caplog.text and "falling back" in caplog.text
    assert contents(work / "restored")[b"P%09d" % 0] == b"a" * 24
    assert not (work / "restored.restoring").exists()


UPLOAD_SCRIPT = """
import sys, time
from pathlib import Path
from state.checkpoint_storage import LocalCheckpointStorage
from state.checkpoints import Checkpoints
checkpoints = Checkpoints(LocalCheckpointStorage(Path(sys.argv[1])), "job", "fp")
def slow(name):
    print("stored", name, flush=True)
    time.sleep(30)
checkpoints.upload(0, Path(sys.argv[2]), 300, on_file=slow)
"""


def test_a_crash_mid_upload_leaves_no_usable_half_checkpoint(setup) -> None:  # type: ignore[no-untyped-def]
    store, checkpoints, work = setup
    fill(store, range(KEYS), b"a", 100)
    take(store, checkpoints, work, "c1")
    fill(store, range(KEYS, KEYS + 50_000), b"c", 300)
    store.checkpoint(work / "c2")
    store.close()
    with subprocess.Popen(
        [sys.executable, "-c", UPLOAD_SCRIPT, str(work / "checkpoints"), str(work / "c2")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as uploader:
        assert uploader.stdout is not None
        assert uploader.stdout.readline().startswith("stored ")
        uploader.send_signal(signal.SIGKILL)
        uploader.wait()

    assert [m.sequence for m in checkpoints.manifests(0)] == [1]
    manifest = checkpoints.restore(0, work / "restored")
    assert manifest is not None and manifest.position == 100
    assert len(contents(work / "restored")) == KEYS + 1  # the keys and the position

    # the next checkpoint completes and clears what the dead upload left behind
    store = PartitionStore(work / "state" / "partition-0")
    fill(store, range(1), b"d", 400)
    third = take(store, checkpoints, work, "c3")
    store.close()
    assert third.sequence == 2  # type: ignore[attr-defined]
    stored = {name for name in LocalCheckpointStorage(work / "checkpoints").names("job/partition-0/files/")}
    assert stored == {f.object for m in checkpoints.manifests(0) for f in m.files}


def test_retention_keeps_the_newest_checkpoints_and_only_their_files(setup) -> None:  # type: ignore[no-untyped-def]
    store, checkpoints, work = setup
    checkpoints.retention = 2
    for round_ in range(5):
        fill(store, range(round_ * 1000, (round_ + 1) * 1000), b"x", round_)
        take(store, checkpoints, work, f"c{round_}")
        time.sleep(0.01)
    store.close()
    assert [m.sequence for m in checkpoints.manifests(0)] == [4, 5]
    storage = LocalCheckpointStorage(work / "checkpoints")
    assert set(storage.names("job/partition-0/files/")) == {f.object for m in checkpoints.manifests(0) for f in m.files}
    assert all(checkpoints.verify(m) == [] for m in checkpoints.manifests(0))
    assert checkpoints.partitions() == [0]
    files = work / "checkpoints" / "job" / "partition-0" / "files"
    assert not any(name.startswith(".tmp-") for name in os.listdir(files))
