"""The ``winnow`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from connectors.event_generator import GeneratorOptions, write_log
from jobs.replay import ReplayOptions, run_replay
from jobs.spec import load_job_spec
from windows.errors import WinnowError


def _replay(args: argparse.Namespace) -> int:
    spec = load_job_spec(args.spec)
    out = Path(args.out)
    options = ReplayOptions(
        input=Path(args.input),
        out=out,
        state_dir=Path(args.state_dir) if args.state_dir else out / "state",
        batch_size=args.batch_size,
        keep_open=args.keep_open,
        progress=sys.stderr.isatty() and not args.quiet,
    )
    if not options.input.exists():
        raise WinnowError(f"input {options.input} does not exist.")
    stats, seconds = run_replay(spec, options)
    rate = stats.events / seconds if seconds > 0 else 0.0
    rows = [
        ("events read", f"{stats.events:,}"),
        ("events applied", f"{stats.applied:,}"),
        ("rejected", f"{stats.rejected:,}"),
        ("late for every window", f"{stats.late:,}"),
        ("final results", f"{stats.results:,}"),
        ("updates", f"{stats.updates:,}"),
        ("decisions", f"{stats.decisions:,}"),
        ("seconds", f"{seconds:,.2f}"),
        ("events/s", f"{rate:,.0f}"),
    ]
    rows += [(f"  late for {name}", f"{count:,}") for name, count in sorted(stats.late_by_window.items())]
    rows += [(f"  rejected: {kind}", f"{count:,}") for kind, count in sorted(stats.rejected_by_reason.items())]
    width = max(len(label) for label, _ in rows)
    print(f"winnow replay: job {spec.name} over {options.input} -> {out}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value:>14}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    options = GeneratorOptions(
        events=args.events, keys=args.keys, rate=args.rate, late=args.late, bad=args.bad, seed=args.seed
    )
    count = write_log(Path(args.out), options)
    print(f"winnow generate: wrote {count:,} events to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``winnow`` command."""
    parser = argparse.ArgumentParser(prog="winnow", description="Windowed aggregates and decisions over event streams.")
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help="run a job over a JSON Lines event log, offline")
    replay.add_argument("--spec", required=True, help="job spec YAML")
    replay.add_argument("--input", required=True, help="event log (.jsonl or .jsonl.gz)")
    replay.add_argument("--out", required=True, help="output directory")
    replay.add_argument("--state-dir", help="RocksDB state directory (default OUT/state)")
    replay.add_argument("--batch-size", type=int, default=50_000, help="events per engine batch (default 50000)")
    replay.add_argument("--keep-open", action="store_true", help="do not close open windows at the end of the log")
    replay.add_argument("--quiet", action="store_true", help="no progress display")
    replay.set_defaults(handler=_replay)

    generate = commands.add_parser("generate", help="write a seeded synthetic request log")
    generate.add_argument("--out", required=True, help="output file (.jsonl or .jsonl.gz)")
    generate.add_argument("--events", type=int, default=1_000_000)
    generate.add_argument("--keys", type=int, default=10_000)
    generate.add_argument("--rate", type=float, default=2_000.0, help="events per second of event time")
    generate.add_argument("--late", type=float, default=0.005, help="share of events arriving late")
    generate.add_argument("--bad", type=float, default=0.0, help="share of deliberately broken lines")
    generate.add_argument("--seed", type=int, default=7)
    generate.set_defaults(handler=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``winnow`` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        print("winnow: --batch-size must be at least 1.", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except WinnowError as error:
        print(f"winnow: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("winnow: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
