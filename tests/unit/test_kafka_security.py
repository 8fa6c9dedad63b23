"""Kafka security through configuration: what every client of the process is given."""

import ssl
import subprocess

import pytest
from pydantic import SecretStr

from streams.app import worker_pipeline
from streams.config import Settings
from streams.detection.ruleset import load_rules
from streams.metrics import Metrics
from streams.runtime.kafka import Cluster, security_options


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A self-signed CA certificate, as a production Kafka's CA bundle would be."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kafka-ca",
                    "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")], check=True, capture_output=True)
    return d


def test_plaintext_is_the_default():
    assert security_options(Settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_over_tls_with_a_ca_and_a_client_certificate(ca):
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="fengqiao", kafka_sasl_password=SecretStr("secret"),
                 kafka_ssl_cafile=ca / "ca.pem", kafka_ssl_certfile=ca / "ca.pem", kafka_ssl_keyfile=ca / "ca.key")
    options = security_options(s)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "fengqiao" and options["sasl_plain_password"] == "secret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED


async def test_every_client_of_the_worker_speaks_the_configured_security(ca):
    """The steps' consumers and the outbox's producer are all made by the process's one Cluster,
    from the settings it was given: no environment read, nothing cached between two of them."""
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", kafka_security_protocol="SSL",
                        kafka_ssl_cafile=ca / "ca.pem")
    pipeline = worker_pipeline(settings, Cluster.of(settings), store=None, rules=load_rules(),  # type: ignore[arg-type]
                               metrics=Metrics())
    clients = [pipeline.producer.client, *(r.consumer._client for r in pipeline.runners)]
    assert len(clients) == 1 + len(pipeline.steps)
    assert all(c._security_protocol == "SSL" and c._ssl_context is not None for c in clients)
    plain = Cluster.of(Settings(kafka_bootstrap_servers="127.0.0.1:9"))
    assert plain.security == {"security_protocol": "PLAINTEXT"}


def test_sasl_without_credentials_is_refused_by_name():
    with pytest.raises(ValueError, match="SASL_PLAINTEXT needs FENGQIAO_KAFKA_SASL_USERNAME"):
        security_options(Settings(kafka_security_protocol="SASL_PLAINTEXT"))
