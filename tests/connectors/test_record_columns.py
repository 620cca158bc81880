"""The columns a job reads of fetched record objects, in C, against the plain reading, on records from a real broker."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.local_broker import LocalBroker
from connectors.record_columns import record_columns
from tests.connectors.test_bare_records import _read_batches, publish


def plain_columns(records: list[Any], traced: bool) -> tuple[list[Any], ...]:
    """The statement: each record's value (b"" for none), offset, first traceparent header and timestamp."""

    def traceparent(headers: Any) -> bytes | None:
        return next((value for name, value in headers or () if name == "traceparent"), None)

    return (
        [r.value if r.value is not None else b"" for r in records],
        [r.offset for r in records],
        [traceparent(r.headers) for r in records] if traced else None,  # type: ignore[list-item]
        [r.timestamp for r in records] if traced else None,  # type: ignore[list-item]
    )


def test_columns_of_bare_and_plain_records_are_the_plain_reading() -> None:
    async def scenario(broker: LocalBroker) -> tuple[list[Any], list[Any]]:
        bootstrap = broker.bootstrap_servers
        headers = [
            lambda i: [],
            lambda i: [("traceparent", b"00-%032x-%016x-01" % (i + 1, i + 1))],
            lambda i: [("other", b"x"), ("traceparent", b"tp-%d" % i), ("traceparent", b"second")],
            lambda i: [("Traceparent", b"not this one")],
        ]
        await publish(
            bootstrap,
            [(None if i % 5 == 0 else b'{"n":%d}' % i, b"k%d" % i, headers[i % 4](i)) for i in range(40)],
            compression_type="gzip",
        )
        plain = await _read_batches(bootstrap, 40, bare=False)
        compressed = await _read_batches(bootstrap, 40, bare=True)  # aiokafka's parsed records
        return [r for batch in plain for r in batch], [r for batch in compressed for r in batch]

    with LocalBroker() as broker:
        plain, bare = asyncio.run(scenario(broker))
    assert len(plain) == len(bare) == 40
    for records in (plain, bare):
        for traced in (True, False):
            assert record_columns(records, traced) == plain_columns(records, traced)
    values, _, traceparents, _ = record_columns(bare, True)
    assert values.count(b"") == 8 and traceparents is not None
    assert sum(tp is not None and tp.startswith(b"tp-") for tp in traceparents) == 10
