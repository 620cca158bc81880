"""Pure window engine: window definitions, stream time, aggregation and emission.

Nothing here does I/O or imports Faust, rocksdict, Kafka or etcd clients.
"""

from windows.aggregates import AggregateKind, AggregateSpec, parse_aggregate
from windows.definitions import EmitMode, HoppingWindows, SlidingWindows, TumblingWindows, WindowSpec
from windows.engine import PartitionEngine
from windows.errors import InputError, SpecError, WinnowError
from windows.events import EventBatch
from windows.results import BatchOutcome, WindowResults

__all__ = [
    "AggregateKind",
    "AggregateSpec",
    "BatchOutcome",
    "EmitMode",
    "EventBatch",
    "HoppingWindows",
    "InputError",
    "PartitionEngine",
    "SlidingWindows",
    "SpecError",
    "TumblingWindows",
    "WindowResults",
    "WindowSpec",
    "WinnowError",
    "parse_aggregate",
]
