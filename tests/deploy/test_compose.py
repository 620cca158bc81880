"""docker-compose.yml, checked by reading it (no Docker runs here): the services and their pinned images,
published ports, commands the real ``winnow`` parser accepts, volumes, start order, the topics the example
job needs, and Prometheus's scrape targets."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import importlib.util
import itertools
import re
import shlex
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from connectors.kafka_settings import ENV_PREFIX, KafkaSettings
from jobs.cli import build_parser
from jobs.live_rules import RulesLocation, build_rules
from jobs.spec import JobSpec, load_job_spec
from jobs.streaming import OutputTopics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PROMETHEUS_CONFIG: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())

KAFKA = "kafka:9092"
WORKERS = ["winnow-worker-1", "winnow-worker-2"]
PRODUCER = "winnow-etcd-watch"
DEMO = "winnow-demo"
#: services whose command is the arguments of `winnow` (run by the image's entrypoint or the demo feed)
WINNOW_COMMANDS = [*WORKERS, PRODUCER, DEMO]
DEMO_FEED = "deploy/compose/demo_feed.py"
SEED_RULES = "deploy/compose/seed_rules.py"


def load_script(relative: str) -> ModuleType:
    """A helper script of the compose stack, imported from its file."""
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    assert spec is not None and spec.loader is not None, relative
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def winnow_args(name: str) -> argparse.Namespace:
    """The service's command as the real ``winnow`` parser reads it (parsed only, never run)."""
    command = [str(part) for part in SERVICES[name]["command"]]
    try:
        return build_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"{name}: `winnow {shlex.join(command)}` is refused by the winnow parser")


def options(command: list[Any]) -> dict[str, str]:
    """``--name value`` pairs of a command line."""
    parts = [str(part) for part in command]
    return {flag: value for flag, value in itertools.pairwise(parts) if flag.startswith("--")}


def environment(name: str) -> dict[str, str]:
    """The service's environment variables (map or list form)."""
    raw = SERVICES[name].get("environment") or {}
    if isinstance(raw, list):
        return dict(str(item).partition("=")[::2] for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def mounts(name: str) -> dict[str, str]:
    """The service's mounts as {target: source}."""
    result = {}
    for volume in SERVICES[name].get("volumes", []):
        if isinstance(volume, dict):
            result[volume["target"]] = volume["source"]
        else:
            source, target = str(volume).split(":")[:2]
            result[target] = source
    return result


def is_named(source: str) -> bool:
    """Whether a mount source is a named volume (not a path)."""
    return not source.startswith((".", "/", "~"))


def mounted_volume(name: str, path: str) -> str:
    """The named volume mounted at ``path`` or a directory above it."""
    for target, source in mounts(name).items():
        if (path == target or path.startswith(target.rstrip("/") + "/")) and is_named(source):
            return source
    pytest.fail(f"{name}: nothing keeps {path} in a named volume")


def depends_on(name: str) -> dict[str, str]:
    """{service: condition} of the service's depends_on (a plain list means service_started)."""
    raw = SERVICES[name].get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {dependency: value.get("condition", "service_started") for dependency, value in raw.items()}


def port_of(address: str) -> int:
    """The port of ``host:port``."""
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), address
    return int(port)


def healthcheck_url_port(name: str) -> int:
    """The port of the local URL the service's healthcheck requests."""
    test = " ".join(str(part) for part in SERVICES[name]["healthcheck"]["test"])
    match = re.search(r"http://(?:127\.0\.0\.1|localhost):(\d+)/", test)
    assert match, f"{name}: the healthcheck requests no local URL: {test}"
    return int(match.group(1))


def worker_spec() -> JobSpec:
    """The job spec the workers run."""
    return load_job_spec(ROOT / winnow_args(WORKERS[0]).spec)


def etcd_client_port() -> int:
    """The client port the etcd service listens on."""
    flags = dict(str(part).split("=", 1) for part in SERVICES["etcd"]["command"] if "=" in str(part))
    return port_of(flags["--listen-client-urls"].split(",")[0])


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {NAME: (host, port)}."""
    result = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


def test_the_stack_has_its_services() -> None:
    expected = {"kafka", "topics", "etcd", "rules", "prometheus", "grafana", *WINNOW_COMMANDS}
    assert expected <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = str(SERVICES[name]["image"])
    if "@sha256:" in image:
        return
    _, _, tag = image.rpartition(":")
    assert ":" in image and "/" not in tag, f"{name}: image {image} has no tag"
    assert tag and tag != "latest", f"{name}: image {image} is not pinned"
    assert re.search(r"\d", tag), f"{name}: tag {tag} names no version"
    if "build" in SERVICES[name]:
        assert image == f"winnow:{PROJECT['version']}", f"{name}: the built image is tagged with the project version"
        assert SERVICES[name]["build"] in (".", "./"), name


def test_the_dockerfile_installs_the_winnow_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^(?=FROM\s)", dockerfile, flags=re.MULTILINE)[1:]
    assert len(stages) == 2, "a build stage compiles the wheel, the runtime stage installs it"
    required = PROJECT["requires-python"].removeprefix(">=")
    for stage in stages:
        base = re.match(r"FROM\s+(\S+)", stage)
        assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-\w+)?", base.group(1)), base
        python = base.group(1).split(":")[1]
        assert tuple(map(int, python.split(".")[:2])) >= tuple(map(int, required.split("."))), python
    build, runtime = stages
    assert re.search(r"apt-get install .*\bgcc\b", build), "the build stage has a C compiler for the extension"
    assert re.search(r"^COPY \. \.$", build, re.MULTILINE)
    assert re.search(r"pip wheel (--[\w-]+ (/\S+ )?)*\.(\s|$)", build), "the wheel is built from the repo"
    wheel_dir = re.search(r"--wheel-dir (\S+)", build)
    assert wheel_dir and re.search(rf"^COPY --from=\S+ {re.escape(wheel_dir.group(1))} ", runtime, re.MULTILINE)
    assert re.search(r"pip install (--[\w-]+ )*\S+\*\.whl", runtime), "the runtime installs the built wheel"
    assert "gcc" not in runtime
    assert "winnow" in PROJECT["scripts"]
    assert re.search(r'^ENTRYPOINT \["winnow"\]$', runtime, re.MULTILINE)
    assert re.search(r"^COPY \. \.$", runtime, re.MULTILINE)


def test_the_image_keeps_every_file_the_services_use() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    # the package build reads pyproject.toml, README.md and every C extension's source; the services run the rest
    extensions = re.findall(r'"((?:connectors|jobs|state|windows)\.\w+)"', (ROOT / "setup.py").read_text())
    assert len(extensions) >= 5, extensions
    used = {"pyproject.toml", "setup.py", "README.md", "jobs/cli.py", DEMO_FEED, SEED_RULES}
    used.update(name.replace(".", "/") + ".pyx" for name in extensions)
    for name in WINNOW_COMMANDS:
        args = winnow_args(name)
        used.update(str(getattr(args, field)) for field in ("spec", "input") if getattr(args, field, None))
    for path in sorted(used):
        assert (ROOT / path).is_file(), path
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        ignored = [p for p in patterns for prefix in prefixes if fnmatch.fnmatch(prefix, p.strip("/"))]
        assert not ignored, f".dockerignore leaves {path} out of the image ({ignored})"


def test_grafana_and_prometheus_publish_their_ports() -> None:
    assert "3000:3000" in [str(port) for port in SERVICES["grafana"]["ports"]]
    assert "9090:9090" in [str(port) for port in SERVICES["prometheus"]["ports"]]


def test_kafka_is_one_kraft_node_that_containers_reach_at_kafka_9092() -> None:
    env = environment("kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:{bound[controller][1]}"
    assert controller in bound and controller not in advertised
    assert set(bound) <= set(protocols) and set(advertised) <= set(bound)
    assert len({port for _, port in bound.values()}) == len(bound), "listeners share a port"
    internal = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert f"{advertised[internal][0]}:{advertised[internal][1]}" == KAFKA
    assert bound[internal][1] == port_of(KAFKA)
    for name in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[name] == "1", name
    # every published port is a listener whose advertised address the host can use
    for published in SERVICES["kafka"].get("ports", []):
        host_port, _, container_port = str(published).rpartition(":")
        listener = next(n for n, (_, port) in bound.items() if port == int(container_port))
        assert advertised[listener] == ("localhost", int(host_port)), published
    data = env["KAFKA_LOG_DIRS"]
    assert is_named(mounts("kafka")[data])


@pytest.mark.parametrize("name", WINNOW_COMMANDS)
def test_winnow_commands_are_accepted_by_the_cli_and_reach_kafka(name: str) -> None:
    service = SERVICES[name]
    assert service.get("entrypoint") in (None, ["python", DEMO_FEED]), name
    args = winnow_args(name)
    env = environment(name)
    known = {ENV_PREFIX + field.name.upper() for field in dataclasses.fields(KafkaSettings)}
    unknown = [variable for variable in env if variable.startswith(ENV_PREFIX) and variable not in known]
    assert unknown == [], f"{name}: unknown Kafka settings {unknown}"
    spec_values: dict[str, Any] = {}
    if getattr(args, "spec", None):
        assert not Path(args.spec).is_absolute() and (ROOT / args.spec).is_file(), args.spec
        spec_values = dict(load_job_spec(ROOT / args.spec).kafka)
    settings = KafkaSettings.resolve(spec_values, env, {"bootstrap_servers": args.bootstrap})
    assert settings.bootstrap_servers == KAFKA, name


def test_workers_share_a_job_and_checkpoints_and_keep_their_own_state() -> None:
    parsed = {name: winnow_args(name) for name in WORKERS}
    spec = worker_spec()
    state_volumes = set()
    for name, args in parsed.items():
        assert args.command == "worker", name
        assert (args.spec, args.group) == (parsed[WORKERS[0]].spec, parsed[WORKERS[0]].group), name
        assert args.metrics_address.startswith("0.0.0.0:"), name
        assert healthcheck_url_port(name) == port_of(args.metrics_address), name
        state_volumes.add(mounted_volume(name, args.state_dir))
        assert args.checkpoint_dir, name
        location = RulesLocation.parse(args.rules_from, spec.name)
        assert (location.host, location.port) == ("etcd", etcd_client_port()), args.rules_from
    assert len(state_volumes) == len(WORKERS), "workers share a state volume"
    checkpoints = {mounted_volume(name, args.checkpoint_dir) for name, args in parsed.items()}
    assert len(checkpoints) == 1, "workers do not share the checkpoint location"


def test_workers_have_a_memory_limit_for_their_governor() -> None:
    from jobs.memory_governor import parse_size

    for name in WORKERS:
        limit = SERVICES[name].get("mem_limit")
        assert limit is not None, f"{name} has no mem_limit: its governor would measure against the host's memory"
        assert parse_size(str(limit)) >= 512 * 2**20, name


def test_the_etcd_watch_producer_keeps_its_position_and_serves_metrics() -> None:
    args = winnow_args(PRODUCER)
    assert args.command == "etcd-watch"
    assert args.etcd == f"etcd:{etcd_client_port()}"
    assert args.metrics_address.startswith("0.0.0.0:")
    assert healthcheck_url_port(PRODUCER) == port_of(args.metrics_address)
    mounted_volume(PRODUCER, args.position_file)


def test_the_demo_publishes_the_workers_input() -> None:
    args = winnow_args(DEMO)
    spec = worker_spec()
    assert args.command == "replay" and args.spec == winnow_args(WORKERS[0]).spec
    assert args.to_kafka == spec.source.topic
    assert args.speed > 0, "published at once, the sample would be over before the dashboards load"
    assert (ROOT / args.input).is_file(), args.input
    assert SERVICES[DEMO]["entrypoint"] == ["python", DEMO_FEED]
    mounted_volume(DEMO, environment(DEMO)["WINNOW_DEMO_PASS_FILE"])


def test_the_rules_service_seeds_the_workers_rule_prefix_with_the_spec_rules() -> None:
    service = SERVICES["rules"]
    assert service["entrypoint"] == ["python", SEED_RULES]
    given = options(service["command"])
    worker = winnow_args(WORKERS[0])
    assert (given["--spec"], given["--rules-from"]) == (worker.spec, worker.rules_from)
    spec = worker_spec()
    location = RulesLocation.parse(given["--rules-from"], spec.name)
    documents = load_script(SEED_RULES).rule_documents(spec)
    rules = build_rules(spec, location.prefix, [((location.prefix + n).encode(), v) for n, v in documents.items()])
    assert [(r.name, r.window, r.condition.text, r.action) for r in rules] == [
        (r.name, r.window, r.condition.text, r.action) for r in sorted(spec.rules, key=lambda r: r.name)
    ]
    assert rules, "the example job has rules to seed"


def test_the_demo_feed_moves_each_pass_past_the_previous_one() -> None:
    feed = load_script(DEMO_FEED)
    lines = [
        b'{"ts":1767225600000,"client_id":"a"}',
        b"{not json",
        b'{"ts":12345,"client_id":"too early"}',
        b'{"ts":1767225659999,"client_id":"b"}',
        b"",
    ]
    assert feed.span_ms(lines, "ts") == 60_000
    shifted = [feed.shift_line(line, "ts", 60_000) for line in lines]
    assert shifted[0] == b'{"ts":1767225660000,"client_id":"a"}'
    assert shifted[1:3] == lines[1:3] and shifted[4] == b""
    sample = feed.read_lines(ROOT / winnow_args(DEMO).input)
    span = feed.span_ms(sample, "ts")
    times = [t for t in (feed.event_time(line, "ts") for line in sample) if t is not None]
    assert span % 60_000 == 0 and span > max(times) - min(times)


def test_services_start_in_order() -> None:
    healthy, completed = "service_healthy", "service_completed_successfully"
    expected = {
        "topics": {"kafka": healthy},
        "rules": {"etcd": healthy},
        **{worker: {"kafka": healthy, "etcd": healthy, "topics": completed, "rules": completed} for worker in WORKERS},
        PRODUCER: {"kafka": healthy, "etcd": healthy, "topics": completed},
        DEMO: {"topics": completed, **dict.fromkeys(WORKERS, healthy)},
        "grafana": {"prometheus": healthy},
    }
    for name, dependencies in expected.items():
        actual = depends_on(name)
        for dependency, condition in dependencies.items():
            assert actual.get(dependency) == condition, f"{name} should wait for {dependency} ({condition})"


def test_dependencies_can_be_met_and_have_no_cycle() -> None:
    for name in SERVICES:
        for dependency, condition in depends_on(name).items():
            assert dependency in SERVICES, f"{name} depends on a missing service {dependency}"
            if condition == "service_healthy":
                assert SERVICES[dependency].get("healthcheck", {}).get("test"), f"{dependency} has no healthcheck"
            if condition == "service_completed_successfully":
                assert str(SERVICES[dependency].get("restart", "no")) == "no", f"{dependency} is not one-shot"
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dependency in depends_on(name):
            visit(dependency, (*path, name))
        done.add(name)

    for name in SERVICES:
        visit(name, ())


@pytest.mark.parametrize("name", ["kafka", "etcd", "prometheus", "grafana", *WORKERS, PRODUCER])
def test_long_running_services_have_healthchecks(name: str) -> None:
    test = SERVICES[name].get("healthcheck", {}).get("test")
    assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_every_volume_is_declared_and_every_mounted_file_exists() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = set()
    for name in SERVICES:
        for target, source in mounts(name).items():
            if is_named(source):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
            else:
                assert source.startswith("./"), f"{name}: mount {source} is not in the repository"
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
                assert target.startswith("/"), target
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_prometheus_and_grafana_mount_their_configuration() -> None:
    prometheus = mounts("prometheus")
    flags = dict(str(part).split("=", 1) for part in SERVICES["prometheus"].get("command", []) if "=" in str(part))
    config_path = flags.get("--config.file", "/etc/prometheus/prometheus.yml")  # the image's default
    assert prometheus[config_path] == "./deploy/prometheus/prometheus.yml"
    for rule_file in PROMETHEUS_CONFIG["rule_files"]:
        target = str(Path(config_path).parent / rule_file)
        assert (ROOT / prometheus[target]).resolve() == (ROOT / "deploy" / "prometheus" / rule_file).resolve()
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    providers = yaml.safe_load((ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "winnow.yml").read_text())
    for provider in providers["providers"]:
        assert grafana[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    home = environment("grafana").get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert (ROOT / "deploy" / "grafana" / "dashboards" / Path(home).name).is_file(), home
    assert environment("grafana")["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment("grafana")["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    datasources = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert [d["url"] for d in datasources["datasources"]] == ["http://prometheus:9090"]


def test_the_topics_service_creates_every_topic_with_its_partition_count() -> None:
    command = [str(part) for part in SERVICES["topics"]["command"]]
    assert command[:2] == ["sh", "-ec"]
    created = {}
    for line in command[2].splitlines():
        parts = shlex.split(line)
        if not parts or "--create" not in parts:
            continue
        assert parts[0].endswith("/kafka-topics.sh"), line
        given = options(parts)
        assert given["--bootstrap-server"] == KAFKA, line
        created[given["--topic"]] = int(given["--partitions"])
    spec = worker_spec()
    producer = winnow_args(PRODUCER)
    expected = {
        spec.source.topic: spec.source.partitions,
        **dict.fromkeys(OutputTopics.for_job(spec.name).all(), spec.source.partitions),
        producer.topic: producer.partitions,
    }
    assert created == expected


def test_prometheus_scrapes_the_compose_services_on_their_metrics_ports() -> None:
    jobs = {scrape["job_name"]: scrape for scrape in PROMETHEUS_CONFIG["scrape_configs"]}
    expected = {"winnow-worker": set(WORKERS), "winnow-etcd-watch": {PRODUCER}}
    assert set(jobs) == set(expected)
    for job, services in expected.items():
        targets = [target for static in jobs[job]["static_configs"] for target in static["targets"]]
        assert {target.rpartition(":")[0] for target in targets} == services, job
        for target in targets:
            host, _, port = target.rpartition(":")
            assert int(port) == port_of(winnow_args(host).metrics_address), target
    # worker metrics name their Winnow job in a `job` label: the scrape keeps it for `by (job)`
    assert jobs["winnow-worker"].get("honor_labels") is True
