"""Kafka clients (客户端), made in one place so that every one of them speaks the deployment's
security: plaintext on the embedded broker, TLS and/or SASL on a production Kafka.

``FENGQIAO_KAFKA_SECURITY_PROTOCOL`` is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; SASL takes
``FENGQIAO_KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with a user name and
password; TLS takes a CA file (and a client certificate and key for mutual TLS). The settings
are read once per process: every client of a process talks to the same Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from functools import cache
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import Settings

log = logging.getLogger(__name__)


def security_options(settings: Settings) -> dict[str, Any]:
    """The aiokafka keyword arguments for the configured security."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                    str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        if not (settings.kafka_sasl_username and settings.kafka_sasl_password):
            raise ValueError(f"{protocol} needs FENGQIAO_KAFKA_SASL_USERNAME and FENGQIAO_KAFKA_SASL_PASSWORD")
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": settings.kafka_sasl_password.get_secret_value()}
    return options


@cache
def _options() -> dict[str, Any]:
    return security_options(Settings())


def producer(bootstrap_servers: str, **kwargs: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **_options(), **kwargs)


def consumer(*topic_names: str, bootstrap_servers: str, **kwargs: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topic_names, bootstrap_servers=bootstrap_servers, **_options(), **kwargs)


def admin(bootstrap_servers: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **_options())


async def stop(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Stop a client. With its broker gone, aiokafka can end a stop with a stray CancelledError of
    its own, which must not abort the rest of a shutdown; a cancellation of this stop still does."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("%s ended its stop with a CancelledError of its own", type(client).__name__)
    except Exception as exc:
        log.warning("%s did not stop cleanly: %s", type(client).__name__, exc)
