"""``winnow checkpoints list|show|verify|restore``: inspect and use a job's checkpoints."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from jobs.spec import JobSpec
from state.checkpoint_storage import LocalCheckpointStorage
from state.checkpoints import Checkpoints, Manifest
from state.errors import StateError


def _checkpoints(spec: JobSpec, location: Path) -> Checkpoints:
    if not location.is_dir():
        raise StateError(f"checkpoint location {location} does not exist.")
    return Checkpoints(LocalCheckpointStorage(location), spec.name, spec.state_fingerprint)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + "Z"


def _selected(checkpoints: Checkpoints, partition: int | None) -> list[Manifest]:
    partitions = [partition] if partition is not None else checkpoints.partitions()
    return [m for p in partitions for m in checkpoints.manifests(p)]


def list_checkpoints(spec: JobSpec, location: Path, partition: int | None, out: TextIO = sys.stdout) -> int:
    """One line per checkpoint: time, size, files shared with the previous one, offset, revision."""
    checkpoints = _checkpoints(spec, location)
    manifests = _selected(checkpoints, partition)
    if not manifests:
        out.write(f"no checkpoints of job {spec.name} in {location}\n")
        return 0
    out.write(
        f"{'partition':>9} {'seq':>5}  {'created (UTC)':<20} {'offset':>10} {'revision':>8} "
        f"{'files':>5} {'bytes':>12} {'shared files':>12} {'uploaded bytes':>14}\n"
    )
    previous: dict[int, set[str]] = {}
    for m in manifests:
        objects = {f.object for f in m.files}
        shared = len(objects & previous.get(m.partition, set()))
        previous[m.partition] = objects
        position = m.position if m.position is not None else "-"
        revision = m.rule_revision if m.rule_revision is not None else "-"
        out.write(
            f"{m.partition:>9} {m.sequence:>5}  {_when(m.created_at):<20} {position:>10} "
            f"{revision:>8} {len(m.files):>5} {m.total_bytes:>12,} "
            f"{shared:>12} {m.uploaded_bytes:>14,}\n"
        )
    return 0


def show_checkpoint(
    spec: JobSpec, location: Path, partition: int, sequence: int | None, out: TextIO = sys.stdout
) -> int:
    """A checkpoint's manifest as JSON."""
    manifests = _checkpoints(spec, location).manifests(partition)
    chosen = [m for m in manifests if sequence is None or m.sequence == sequence]
    if not chosen:
        raise StateError(f"no checkpoint {sequence if sequence is not None else ''} of partition {partition}.")
    out.write(chosen[-1].to_json().decode() + "\n")
    return 0


def verify_checkpoints(spec: JobSpec, location: Path, partition: int | None, out: TextIO = sys.stdout) -> int:
    """Check every selected checkpoint's files (presence, size, SHA-256); exit status 1 when any is damaged."""
    checkpoints = _checkpoints(spec, location)
    damaged = 0
    manifests = _selected(checkpoints, partition)
    for m in manifests:
        problems = checkpoints.verify(m)
        if problems:
            damaged += 1
            out.write(f"DAMAGED {m.ident}: {'; '.join(problems)}\n")
        else:
            out.write(f"ok      {m.ident}: {len(m.files)} files, {m.total_bytes:,} bytes\n")
    out.write(f"{len(manifests)} checkpoints checked, {damaged} damaged\n")
    return 1 if damaged else 0


def restore_checkpoint(
    spec: JobSpec,
    location: Path,
    partition: int,
    state_dir: Path,
    sequence: int | None,
    out: TextIO = sys.stdout,
) -> int:
    """Restore a partition's newest intact checkpoint (or ``sequence``) into a state directory."""
    target = state_dir / f"partition-{partition}"
    if target.exists():
        raise StateError(f"{target} already exists; move it away first (a worker restores missing state by itself).")
    manifest = _checkpoints(spec, location).restore(partition, target, sequence)
    if manifest is None:
        out.write(f"no intact checkpoint of partition {partition} to restore\n")
        return 1
    out.write(
        f"restored {manifest.ident} (offset {manifest.position}, {len(manifest.files)} files, "
        f"{manifest.total_bytes:,} bytes) into {target}\n"
    )
    return 0
