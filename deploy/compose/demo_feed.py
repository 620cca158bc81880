"""The docker-compose demo's event feed: ``winnow replay --to-kafka`` over an event log, pass after pass.

Usage (the arguments are those of ``winnow replay`` and are checked by its own parser)::

    python deploy/compose/demo_feed.py replay --spec SPEC --input LOG --to-kafka TOPIC [--speed N] [...]

Every pass publishes the log at ``--speed`` times its own pace. Pass *n* moves every event time forward
by *n* times the log's span, rounded up to whole minutes, so each pass carries on where the previous one
ended: publishing the same event times again would only make every event late for every window. With
``WINNOW_DEMO_PASS_FILE`` set, the number of the next pass is kept in that file, so a restarted feed goes
on from there instead of publishing event times its job has already passed.
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
from pathlib import Path

import orjson

from connectors.event_decoding import TimeFormat
from jobs.cli import build_parser
from jobs.cli import main as winnow
from jobs.spec import load_job_spec
from windows.errors import WinnowError

MINUTE_MS = 60_000
#: 2000-01-01T00:00:00Z. Earlier event times are rejected by the engine; lines holding one are left as
#: they are, so a deliberately broken line stays broken in the same way.
EARLIEST_MS = 946_684_800_000
PASS_FILE_VARIABLE = "WINNOW_DEMO_PASS_FILE"


def read_lines(path: Path) -> list[bytes]:
    """The lines of a JSON Lines log (``.gz`` or plain), without their newlines."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.split(b"\n")


def event_time(line: bytes, field: str) -> int | None:
    """The line's integer event time in epoch milliseconds, or None (not an object, no such field, too early)."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    value = event.get(field) if isinstance(event, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= EARLIEST_MS:
        return value
    return None


def span_ms(lines: list[bytes], field: str) -> int:
    """The log's event-time span, rounded up to whole minutes (at least one minute)."""
    times = [time for time in (event_time(line, field) for line in lines) if time is not None]
    if not times:
        raise WinnowError(f"the log has no integer event times in field {field!r}; nothing to shift.")
    return -(-(max(times) - min(times) + 1) // MINUTE_MS) * MINUTE_MS


def shift_line(line: bytes, field: str, shift: int) -> bytes:
    """The line with its event time moved by ``shift`` ms; a line without a usable event time is unchanged."""
    if shift == 0 or event_time(line, field) is None:
        return line
    event = orjson.loads(line)
    event[field] += shift
    return orjson.dumps(event)


def read_pass(path: str | None) -> int:
    """The number of the next pass kept in ``path`` (0 when there is none yet)."""
    if not path:
        return 0
    try:
        return max(0, int(Path(path).read_text().strip()))
    except (OSError, ValueError):
        return 0


def write_pass(path: str | None, number: int) -> None:
    """Keep the number of the next pass in ``path``, atomically."""
    if not path:
        return
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(f"{number}\n")
    os.replace(temporary, target)


def main(argv: list[str] | None = None, passes: int | None = None) -> int:
    """Publish the log again and again (``passes`` times, or for ever); returns an exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    if args.command != "replay" or not args.to_kafka:
        print("demo_feed: give the arguments of `winnow replay ... --to-kafka TOPIC`.", file=sys.stderr)
        return 2
    try:
        spec = load_job_spec(args.spec)
        if spec.source.timestamp_format != TimeFormat.EPOCH_MS:
            raise WinnowError(
                f"the demo feed shifts epoch_ms event times; {args.spec} has {spec.source.timestamp_format.value}."
            )
        source = Path(args.input)
        lines = read_lines(source)
        span = span_ms(lines, spec.source.timestamp)
    except (OSError, WinnowError) as error:
        print(f"demo_feed: {error}", file=sys.stderr)
        return 2
    pass_file = os.environ.get(PASS_FILE_VARIABLE)
    number = read_pass(pass_file)
    done = 0
    while passes is None or done < passes:
        shift = number * span
        print(f"demo_feed: pass {number}, event times moved forward by {shift // 1000:,} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="winnow-demo-") as work:
            log = source
            if shift:
                log = Path(work) / "events.jsonl"
                log.write_bytes(b"\n".join(shift_line(line, spec.source.timestamp, shift) for line in lines))
            status = winnow([*arguments, "--input", str(log)])  # argparse keeps the last --input
        if status != 0:
            return status
        number += 1
        done += 1
        write_pass(pass_file, number)
    return 0


if __name__ == "__main__":
    sys.exit(main())
