"""The ``winnow`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from connectors.event_generator import GeneratorOptions, write_log
from connectors.kafka_settings import KafkaSettings
from jobs.replay import ReplayOptions, run_replay
from jobs.spec import JobSpec, load_job_spec
from windows.errors import WinnowError

SAMPLE_LOG = Path(__file__).resolve().parents[1] / "data" / "sample" / "api-events.jsonl.gz"


def kafka_settings(spec: JobSpec, args: argparse.Namespace) -> KafkaSettings:
    """Broker settings: the spec's kafka section, then WINNOW_KAFKA_* variables, then --bootstrap."""
    return KafkaSettings.resolve(dict(spec.kafka), os.environ, {"bootstrap_servers": args.bootstrap})


def _to_kafka(spec: JobSpec, args: argparse.Namespace) -> int:
    from connectors.kafka_publish import PublishOptions, publish_log
    from connectors.kafka_topics import ensure_topics

    settings = kafka_settings(spec, args)
    options = PublishOptions(
        input=Path(args.input),
        topic=args.to_kafka,
        key_field=spec.source.key,
        timestamp_field=spec.source.timestamp,
        timestamp_format=spec.source.timestamp_format,
        partitions=spec.source.partitions,
        speed=args.speed or None,
    )

    async def publish() -> Any:
        await ensure_topics(settings, {options.topic: options.partitions})
        return await publish_log(settings, options)

    stats = asyncio.run(publish())
    rate = stats.events / stats.seconds if stats.seconds > 0 else 0.0
    print(
        f"winnow replay: published {stats.events:,} events from {options.input} to {options.topic} "
        f"({stats.unkeyed:,} undecodable, sent unkeyed) in {stats.seconds:,.2f} s, {rate:,.0f} events/s"
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    spec = load_job_spec(args.spec)
    if not Path(args.input).exists():
        raise WinnowError(f"input {args.input} does not exist.")
    if args.to_kafka:
        return _to_kafka(spec, args)
    if not args.out:
        raise WinnowError("replay needs --out DIR (or --to-kafka TOPIC to publish the log instead).")
    out = Path(args.out)
    options = ReplayOptions(
        input=Path(args.input),
        out=out,
        state_dir=Path(args.state_dir) if args.state_dir else out / "state",
        batch_size=args.batch_size,
        keep_open=args.keep_open,
        progress=sys.stderr.isatty() and not args.quiet,
        memory_limit=args.memory_limit,
        memory_settings=args.memory_thresholds,
        resident_panes=args.resident_panes,
        export_metrics=_serve_metrics(args, "replay"),
    )
    stats, seconds, memory = run_replay(spec, options)
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
        ("memory peak MiB", f"{memory.peak / 2**20:,.0f}"),
        ("memory limit MiB", f"{memory.limit / 2**20:,.0f}"),
        ("memory limit from", memory.source),
        ("memory levels", ",".join(memory.levels)),
        ("seconds throttled", f"{memory.seconds_throttled:,.2f}"),
        ("back to normal", f"{memory.returns_to_normal:,} times"),
        ("panes evicted", f"{stats.panes_evicted:,}"),
    ]
    rows += [(f"  late for {name}", f"{count:,}") for name, count in sorted(stats.late_by_window.items())]
    rows += [(f"  rejected: {kind}", f"{count:,}") for kind, count in sorted(stats.rejected_by_reason.items())]
    width = max(len(label) for label, _ in rows)
    print(f"winnow replay: job {spec.name} over {options.input} -> {out}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value:>14}")
    return 0


def _metrics_argument(command: argparse.ArgumentParser, name: str) -> None:
    from connectors.metrics import DEFAULT_ADDRESSES

    default = DEFAULT_ADDRESSES[name]
    command.add_argument(
        "--metrics-address",
        default=default,
        help=f"serve Prometheus metrics at http://HOST:PORT/metrics (default {default}, or a free port if that one "
        "is taken; 'off' to serve none)",
    )


def _serve_metrics(args: argparse.Namespace, name: str) -> bool:
    """Serve the metrics where ``--metrics-address`` says; return whether they are served."""
    from connectors.metrics import DEFAULT_ADDRESSES, serve

    address = args.metrics_address
    if address == "off":
        return False
    default = address == DEFAULT_ADDRESSES[name]
    host, port = serve(address, fallback=default)
    if name != "replay" or not default:  # replay keeps stderr for its progress line unless asked
        print(f"winnow {name}: metrics at http://{host}:{port}/metrics", file=sys.stderr, flush=True)
    return True


def _memory_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--memory-limit",
        type=_size,
        help="memory limit for the governor, e.g. 512M or 2G (default: the cgroup's limit, else the machine's memory)",
    )
    command.add_argument(
        "--memory-thresholds",
        type=_thresholds,
        metavar="P,T,C",
        help="percent of the limit where pressure, throttle and critical begin (default 70,85,95; each ends 5 lower)",
    )
    command.add_argument(
        "--resident-panes",
        type=int,
        default=1_000_000,
        help="window panes kept in memory; the rest stay in RocksDB and are read back when needed (default 1000000)",
    )


def _size(text: str) -> int:
    from jobs.memory_governor import parse_size

    try:
        return parse_size(text)
    except WinnowError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _thresholds(text: str) -> object:
    from jobs.memory_governor import GovernorSettings

    try:
        return GovernorSettings.from_percentages(text)
    except WinnowError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _worker(args: argparse.Namespace) -> int:
    from jobs.app import GroupOptions
    from jobs.streaming import StreamingOptions
    from jobs.worker import run_worker

    spec = load_job_spec(args.spec)
    settings = kafka_settings(spec, args)
    streaming = StreamingOptions(
        state_dir=Path(args.state_dir),
        commit_interval=args.commit_interval,
        idle_timeout=spec.source.idle_timeout / 1000.0 if spec.source.idle_timeout is not None else None,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_retention=args.checkpoint_retention,
        resident_panes=args.resident_panes,
    )
    group = GroupOptions(
        group_id=args.group or f"winnow-{spec.name}",
        session_timeout=args.session_timeout,
        heartbeat_interval=max(0.5, args.session_timeout / 3.5),
        rebalance_timeout=max(args.session_timeout * 3, 10.0),
    )
    _serve_metrics(args, "worker")
    live_rules = None
    if args.rules_from:
        from jobs.live_rules import LiveRules, RulesLocation

        live_rules = LiveRules(RulesLocation.parse(args.rules_from, spec.name), spec, args.rules_stale_after)
    return run_worker(
        spec,
        settings,
        streaming,
        group,
        log_level=args.log_level,
        live_rules=live_rules,
        memory_limit=args.memory_limit,
        memory_settings=args.memory_thresholds,
    )


def _rules(args: argparse.Namespace) -> int:
    from jobs.live_rules import RulesLocation, rollback, rule_history

    spec = load_job_spec(args.spec)
    location = RulesLocation.parse(args.rules_from, spec.name)
    if args.action == "history":
        history, oldest = asyncio.run(rule_history(location))
        print(f"rule set {location.prefix} at {location.host}:{location.port} (history kept from revision {oldest})")
        for revision, rules in history:
            print(f"  revision {revision:>8}: {', '.join(sorted(rules)) or '(no rules)'}")
        return 0
    if args.to_revision is None:
        raise WinnowError("rules rollback needs --to-revision R.")
    written = asyncio.run(rollback(location, spec, args.to_revision))
    print(f"rules under {location.prefix} set back to revision {args.to_revision}'s (written at revision {written})")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from jobs.dev import DevOptions, run_dev

    spec = load_job_spec(args.spec)
    options = DevOptions(
        spec_path=Path(args.spec),
        input=Path(args.input),
        speed=args.speed or None,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        until_done=args.until_done,
        max_print=args.max_print,
        show_updates=args.show_updates,
    )
    if not options.input.exists():
        raise WinnowError(f"input {options.input} does not exist.")
    return run_dev(spec, options)


def _checkpoints(args: argparse.Namespace) -> int:
    from jobs import checkpoint_commands as commands

    spec = load_job_spec(args.spec)
    location = Path(args.checkpoint_dir)
    if args.action == "list":
        return commands.list_checkpoints(spec, location, args.partition)
    if args.action == "verify":
        return commands.verify_checkpoints(spec, location, args.partition)
    if args.partition is None:
        raise WinnowError(f"checkpoints {args.action} needs --partition.")
    if args.action == "show":
        return commands.show_checkpoint(spec, location, args.partition, args.sequence)
    if not args.state_dir:
        raise WinnowError("checkpoints restore needs --state-dir.")
    return commands.restore_checkpoint(spec, location, args.partition, Path(args.state_dir), args.sequence)


def _etcd_watch(args: argparse.Namespace) -> int:
    import logging
    import signal

    from connectors.etcd_watch import EtcdWatchProducer, WatchOptions
    from connectors.kafka_topics import ensure_topics

    host, _, port = args.etcd.rpartition(":")
    if not host or not port.isdigit():
        raise WinnowError(f"--etcd {args.etcd!r} is not host:port.")
    if args.linger_ms < 0:
        raise WinnowError(f"--linger-ms must be zero or more milliseconds, got {args.linger_ms}.")
    settings = KafkaSettings.resolve({}, os.environ, {"bootstrap_servers": args.bootstrap})
    options = WatchOptions(
        etcd_host=host,
        etcd_port=int(port),
        prefix=args.prefix,
        topic=args.topic,
        partitions=args.partitions,
        position_file=Path(args.position_file),
        linger_ms=args.linger_ms,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        await ensure_topics(settings, {options.topic: options.partitions})
        producer = EtcdWatchProducer(options, settings)
        from connectors.metrics import REGISTRY, StatusCollector

        REGISTRY.register(StatusCollector("winnow_etcd_watch", producer.metrics))
        _serve_metrics(args, "etcd-watch")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, producer.stop)
        await producer.run()
        logging.getLogger("winnow.etcd_watch").info("stopped: %s", producer.status)

    asyncio.run(run())
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
    replay.add_argument("--out", help="output directory")
    replay.add_argument("--to-kafka", metavar="TOPIC", help="publish the log into TOPIC instead of running the job")
    replay.add_argument(
        "--speed", type=float, default=0.0, help="with --to-kafka: N times the log's own pace (default: at once)"
    )
    replay.add_argument("--bootstrap", help="with --to-kafka: bootstrap servers (default from spec/environment)")
    replay.add_argument("--state-dir", help="RocksDB state directory (default OUT/state)")
    replay.add_argument("--batch-size", type=int, default=50_000, help="events per engine batch (default 50000)")
    replay.add_argument("--keep-open", action="store_true", help="do not close open windows at the end of the log")
    replay.add_argument("--quiet", action="store_true", help="no progress display")
    _metrics_argument(replay, "replay")
    _memory_arguments(replay)
    replay.set_defaults(handler=_replay)

    worker = commands.add_parser("worker", help="run a streaming worker (a Faust worker) of a job")
    worker.add_argument("--spec", required=True, help="job spec YAML")
    worker.add_argument("--bootstrap", help="bootstrap servers host:port[,...] (default from spec/environment)")
    worker.add_argument("--state-dir", default="winnow-state", help="RocksDB state directory (default winnow-state)")
    worker.add_argument("--group", help="consumer group id (default winnow-<job>)")
    worker.add_argument(
        "--commit-interval", type=float, default=1.0, help="seconds between state+offset commits (default 1)"
    )
    worker.add_argument(
        "--session-timeout", type=float, default=10.0, help="consumer group session timeout in seconds (default 10)"
    )
    worker.add_argument("--checkpoint-dir", help="checkpoint location, a local or mounted path (default: none)")
    worker.add_argument(
        "--checkpoint-interval", type=float, default=30.0, help="seconds between checkpoints (default 30)"
    )
    worker.add_argument(
        "--checkpoint-retention", type=int, default=3, help="checkpoints kept per partition (default 3)"
    )
    worker.add_argument(
        "--rules-from", metavar="URL", help="live rules: etcd://HOST:PORT/winnow/<tenant>/jobs/<job>/rules/"
    )
    worker.add_argument(
        "--rules-stale-after", type=float, default=30.0, help="seconds without etcd before rules count as stale"
    )
    _metrics_argument(worker, "worker")
    _memory_arguments(worker)
    worker.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(handler=_worker)

    dev = commands.add_parser("dev", help="run the streaming job on an embedded local broker, fed from a log")
    dev.add_argument("--spec", required=True, help="job spec YAML")
    dev.add_argument("--input", default=str(SAMPLE_LOG), help="event log to publish (default: the bundled sample log)")
    dev.add_argument("--speed", type=float, default=0.0, help="N times the log's own pace (default: at once)")
    dev.add_argument("--state-dir", help="RocksDB state directory (default: a temporary directory)")
    dev.add_argument("--until-done", action="store_true", help="stop once every event is processed")
    dev.add_argument("--max-print", type=int, help="print at most N records (default: all)")
    dev.add_argument("--show-updates", action="store_true", help="print emit: update results too")
    dev.set_defaults(handler=_dev)

    checkpoints = commands.add_parser("checkpoints", help="list, show, verify or restore a job's checkpoints")
    checkpoints.add_argument("action", choices=["list", "show", "verify", "restore"])
    checkpoints.add_argument("--spec", required=True, help="job spec YAML")
    checkpoints.add_argument("--checkpoint-dir", required=True, help="checkpoint location")
    checkpoints.add_argument("--partition", type=int, help="one partition (default: all; show/restore need one)")
    checkpoints.add_argument("--sequence", type=int, help="show/restore: this checkpoint (default: the newest)")
    checkpoints.add_argument("--state-dir", help="restore: the state directory to restore into")
    checkpoints.set_defaults(handler=_checkpoints)

    watch = commands.add_parser("etcd-watch", help="produce every change under an etcd prefix to a Kafka topic")
    watch.add_argument("--etcd", default="127.0.0.1:2379", help="etcd host:port (default 127.0.0.1:2379)")
    watch.add_argument("--prefix", required=True, help="etcd key prefix to watch")
    watch.add_argument("--topic", required=True, help="Kafka topic to produce to")
    watch.add_argument("--partitions", type=int, default=1, help="partitions of the topic (default 1)")
    watch.add_argument("--position-file", default="etcd-watch.position", help="where the produced position is kept")
    watch.add_argument(
        "--linger-ms",
        type=int,
        default=10,
        help="how long to gather changes into one Kafka request (default 10; 0 sends each at once, at more CPU)",
    )
    watch.add_argument("--bootstrap", help="bootstrap servers (default from WINNOW_KAFKA_* / localhost:9092)")
    _metrics_argument(watch, "etcd-watch")
    watch.set_defaults(handler=_etcd_watch)

    rules = commands.add_parser("rules", help="list past revisions of a live rule set, or roll it back")
    rules.add_argument("action", choices=["history", "rollback"])
    rules.add_argument("--spec", required=True, help="job spec YAML (to validate rules)")
    rules.add_argument(
        "--rules-from", required=True, metavar="URL", help="etcd://HOST:PORT/winnow/<t>/jobs/<job>/rules/"
    )
    rules.add_argument("--to-revision", type=int, help="rollback: the revision whose rules become current again")
    rules.set_defaults(handler=_rules)

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
