"""Create and check the topics a job reads and writes.

Topics are created explicitly with the partition count the job expects,
never left to broker auto-creation (which picks its own count). An existing
topic with a different partition count is an error: window state and stream
time are per partition, so the count is part of the job's shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from connectors.errors import ConnectorError
from connectors.kafka_settings import KafkaSettings
from windows.errors import reason


async def topic_partitions(settings: KafkaSettings, names: list[str]) -> dict[str, int]:
    """Partition counts of the topics in ``names`` that exist.

    Lists all topics first and describes only existing ones: a metadata request
    naming a missing topic makes brokers that auto-create topics create it, with
    their default partition count.
    """
    admin = AIOKafkaAdminClient(**settings.client_options())
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        present = [name for name in names if name in existing]
        described = await admin.describe_topics(present) if present else []
    except KafkaError as error:
        raise ConnectorError(f"cannot describe topics at {settings.bootstrap_servers}: {reason(error)}.") from None
    finally:
        await admin.close()
    counts: dict[str, int] = {}
    for entry in described:
        if entry.get("error_code", 0) == 0 and entry.get("partitions"):
            counts[str(entry["topic"])] = len(entry["partitions"])
    return counts


async def ensure_topics(settings: KafkaSettings, wanted: Mapping[str, int]) -> list[str]:
    """Create the missing topics of ``wanted`` (name -> partitions); return the names created.

    Raises ``ConnectorError`` when an existing topic has another partition count.
    """
    existing = await topic_partitions(settings, list(wanted))
    for name, count in existing.items():
        if count != wanted[name]:
            raise ConnectorError(
                f"topic {name!r} has {count} partitions but the job expects {wanted[name]}; "
                f"set source.partitions to {count} or recreate the topic."
            )
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    admin = AIOKafkaAdminClient(**settings.client_options())
    try:
        await admin.start()
        replication = settings.replication_factor
        await admin.create_topics(
            [NewTopic(name, num_partitions=wanted[name], replication_factor=replication) for name in missing]
        )
    except TopicAlreadyExistsError:
        pass  # created concurrently (another worker); its count is checked below
    except KafkaError as error:
        raise ConnectorError(f"cannot create topics {', '.join(missing)}: {reason(error)}.") from None
    finally:
        await admin.close()
    created = await topic_partitions(settings, missing)
    for name in missing:
        if created.get(name) != wanted[name]:
            raise ConnectorError(
                f"topic {name!r} should have {wanted[name]} partitions after creation, found {created.get(name)}."
            )
    return missing


async def committed_offsets(settings: KafkaSettings, group: str, topic: str, partitions: int) -> dict[int, int]:
    """A consumer group's committed offsets in ``topic`` (partition -> offset), read without joining the group."""
    consumer = AIOKafkaConsumer(**settings.client_options(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        found = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()
    return {p: offset for p, offset in found.items() if offset is not None}
