"""Transport security from settings: Kafka SSL / SASL (PLAIN, SCRAM) and Redis AUTH / TLS.

One translation for every client: FastStream's broker takes a ``BaseSecurity``; plain aiokafka clients (admin,
CLI, lag exporter) take keyword options. Secrets stay ``SecretStr`` until the moment a client needs them.
"""

from __future__ import annotations

import ssl
from typing import Any

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import Settings

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile), str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
        )
    return context


def _credentials(settings: Settings) -> tuple[str, str]:
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise ValueError(
            f"AIMASS_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "AIMASS_KAFKA_SASL_USERNAME and AIMASS_KAFKA_SASL_PASSWORD"
        )
    return settings.kafka_sasl_username, settings.kafka_sasl_password.get_secret_value()


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """For ``KafkaBroker(security=...)``."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = kafka_ssl_context(settings)
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username, password = _credentials(settings)
    return _SASL[settings.kafka_sasl_mechanism](username, password, ssl_context=context, use_ssl=protocol == "SASL_SSL")


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """For plain aiokafka clients: ``AIOKafkaProducer(**kafka_client_options(settings), ...)``."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        username, password = _credentials(settings)
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=username, sasl_plain_password=password
        )
    return options


def redis_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_ssl_cafile is not None:
        options["ssl_ca_certs"] = str(settings.redis_ssl_cafile)
    return options
