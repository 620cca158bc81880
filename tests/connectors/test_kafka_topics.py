"""Topic creation and checks against a real broker, and Kafka settings resolution."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from connectors.errors import ConnectorError
from connectors.kafka_settings import KafkaSettings
from connectors.kafka_topics import ensure_topics, topic_partitions


def test_topics_are_created_with_the_partitions_asked_for_and_a_mismatch_is_refused(broker: str) -> None:
    settings = KafkaSettings(bootstrap_servers=broker)
    name = f"topics-{uuid.uuid4().hex[:8]}"
    assert asyncio.run(topic_partitions(settings, [name])) == {}  # looking does not auto-create it
    assert asyncio.run(ensure_topics(settings, {name: 3, f"{name}.out": 3})) == [name, f"{name}.out"]
    assert asyncio.run(topic_partitions(settings, [name, f"{name}.out"])) == {name: 3, f"{name}.out": 3}
    assert asyncio.run(ensure_topics(settings, {name: 3})) == []
    with pytest.raises(ConnectorError, match=rf"topic '{name}' has 3 partitions but the job expects 2"):
        asyncio.run(ensure_topics(settings, {name: 2, f"{name}.new": 2}))
    assert asyncio.run(topic_partitions(settings, [f"{name}.new"])) == {}  # nothing created after the refusal


def test_settings_come_from_the_spec_then_the_environment_then_explicit_values() -> None:
    spec = {"bootstrap_servers": "spec:9092", "client_id": "from-spec", "replication_factor": 3}
    env = {"WINNOW_KAFKA_BOOTSTRAP_SERVERS": "env-a:9092,env-b:9093", "WINNOW_KAFKA_REPLICATION_FACTOR": "2"}
    settings = KafkaSettings.resolve(spec, env, {"bootstrap_servers": None})
    assert (settings.servers, settings.client_id, settings.replication_factor) == (
        ["env-a:9092", "env-b:9093"],
        "from-spec",
        2,
    )
    assert KafkaSettings.resolve(spec, env, {"bootstrap_servers": "cli:1"}).servers == ["cli:1"]
    options = settings.client_options()
    assert options["bootstrap_servers"] == ["env-a:9092", "env-b:9093"] and "sasl_mechanism" not in options


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bootstrap_servers": "nohost"}, "'nohost' is not host:port"),
        ({"security_protocol": "TLS"}, "security_protocol 'TLS' is not one of"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "WINNOW_KAFKA_SASL_PASSWORD",
        ),
        ({"bootstrap_servers": "a:1", "colour": "blue"}, "unknown kafka setting 'colour'"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectorError, match=message):
        KafkaSettings.resolve(values, {}, {})


def test_sasl_settings_become_client_options() -> None:
    env = {"WINNOW_KAFKA_SASL_PASSWORD": "secret"}
    spec = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "winnow"}
    options = KafkaSettings.resolve(spec, env, {}).client_options()
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "winnow",
        "secret",
    )
