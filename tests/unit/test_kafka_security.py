"""Kafka security through configuration: what every client of the process is given."""

import ssl
import subprocess

import faust
import pytest
from pydantic import SecretStr

from streams.config import Settings
from streams.kafka import faust_options, security_options


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A self-signed CA certificate, as a production Kafka's CA bundle would be."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kafka-ca",
                    "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")], check=True, capture_output=True)
    return d


def test_plaintext_is_the_default_and_gives_faust_nothing():
    assert security_options(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_options(Settings()) == {}


def test_sasl_over_tls_with_a_ca_and_a_client_certificate(ca):
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="fengqiao", kafka_sasl_password=SecretStr("secret"),
                 kafka_ssl_cafile=ca / "ca.pem", kafka_ssl_certfile=ca / "ca.pem", kafka_ssl_keyfile=ca / "ca.key")
    options = security_options(s)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "fengqiao" and options["sasl_plain_password"] == "secret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED
    credentials = faust_options(s)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials) and credentials.username == "fengqiao"


def test_tls_alone_gives_faust_its_context(ca):
    s = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=ca / "ca.pem")
    assert isinstance(faust_options(s)["broker_credentials"], faust.SSLCredentials)


def test_sasl_without_credentials_is_refused_by_name():
    with pytest.raises(ValueError, match="SASL_PLAINTEXT needs FENGQIAO_KAFKA_SASL_USERNAME"):
        security_options(Settings(kafka_security_protocol="SASL_PLAINTEXT"))
