"""How to reach a Kafka cluster: bootstrap servers, client id, TLS and SASL.

Settings come from a job spec's ``kafka:`` section and can be overridden by
``WINNOW_KAFKA_*`` environment variables (secrets belong in the environment,
not in the spec). One frozen object feeds every client Winnow creates: the
Faust worker's consumer, the output producer, the admin client and the log
publisher.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from connectors.errors import ConnectorError
from windows.errors import reason

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENV_PREFIX = "WINNOW_KAFKA_"


@dataclass(frozen=True)
class KafkaSettings:
    """Connection settings shared by every Kafka client of one process."""

    bootstrap_servers: str = "localhost:9092"
    client_id: str = "winnow"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    replication_factor: int = 1

    def __post_init__(self) -> None:
        if not self.servers:
            raise ConnectorError("kafka bootstrap_servers is empty; give host:port[,host:port...].")
        for server in self.servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ConnectorError(f"kafka bootstrap server {server!r} is not host:port.")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConnectorError(
                f"kafka security_protocol {self.security_protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}."
            )
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConnectorError(
                    f"kafka security_protocol {self.security_protocol} needs sasl_mechanism, one of "
                    f"{', '.join(SASL_MECHANISMS)} (got {self.sasl_mechanism!r})."
                )
            if not self.sasl_username or self.sasl_password is None:
                raise ConnectorError(
                    f"kafka security_protocol {self.security_protocol} needs sasl_username and sasl_password "
                    f"(set {ENV_PREFIX}SASL_PASSWORD in the environment)."
                )
        if self.replication_factor < 1:
            raise ConnectorError(f"kafka replication_factor must be at least 1, got {self.replication_factor}.")

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers as a list of ``host:port``."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context for SSL and SASL_SSL, from the given CA and client certificate files."""
        if not self.security_protocol.endswith("SSL"):
            return None
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError) as error:
            raise ConnectorError(f"cannot load kafka TLS files: {reason(error)}.") from None
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    @classmethod
    def resolve(
        cls, spec_values: Mapping[str, Any], environ: Mapping[str, str], explicit: Mapping[str, Any]
    ) -> KafkaSettings:
        """Settings from a spec's ``kafka:`` section, then ``WINNOW_KAFKA_*`` variables, then explicit values."""
        values: dict[str, Any] = dict(spec_values)
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            if f.name == "replication_factor":
                if not raw.strip().isdigit():
                    raise ConnectorError(f"{ENV_PREFIX}REPLICATION_FACTOR must be a whole number, got {raw!r}.")
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        values.update({name: value for name, value in explicit.items() if value is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConnectorError(
                f"unknown kafka setting {unknown[0]!r}; known settings are {', '.join(sorted(known))}."
            )
        return cls(**values)
