"""Errors raised at Winnow's connections to the outside: files, Kafka, etcd."""

from __future__ import annotations

from windows.errors import WinnowError


class ConnectorError(WinnowError):
    """A source or sink could not be read, written or reached."""
