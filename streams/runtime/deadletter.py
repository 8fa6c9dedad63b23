"""Dead letters (死信): what could not be processed, kept whole with its reason.

Nothing refused is dropped. The original bytes go to the ``dead-letters`` topic unchanged, and
Kafka headers beside them say where they came from (``fq.source.topic/partition/offset``), why
(``fq.reason``), which field (``fq.field``) and a message (``fq.message``). The validation step,
the gateway and the webhook notifier all write them this way, and the sink reads them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class DeadLetter:
    """Input that failed, kept whole with its reason."""

    raw: bytes
    source_topic: str
    partition: int
    offset: int
    # invalid_encoding | invalid_json | invalid_xml | xml_forbidden | not_cap | not_in_catalogue |
    # unknown_region | unresolved_reference | invalid_field; and webhook_undeliverable for a notice
    # no attempt could deliver (its field is the hook's URL)
    reason: str
    field: str
    message: str

    @property
    def dlq_id(self) -> str:
        return f"{self.source_topic}/{self.partition}/{self.offset}"

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carried beside the original bytes on the dead-letters topic."""
        return [
            ("fq.source.topic", self.source_topic.encode()),
            ("fq.source.partition", str(self.partition).encode()),
            ("fq.source.offset", str(self.offset).encode()),
            ("fq.reason", self.reason.encode()),
            ("fq.field", self.field.encode()),
            ("fq.message", self.message.encode()),
        ]

    @classmethod
    def from_headers(cls, raw: bytes, headers: Mapping[str, bytes]) -> DeadLetter:
        def h(name: str) -> str:
            return headers.get(name, b"").decode("utf-8", "replace")

        return cls(raw, h("fq.source.topic"), int(h("fq.source.partition") or -1),
                   int(h("fq.source.offset") or -1), h("fq.reason"), h("fq.field"), h("fq.message"))


@dataclass(frozen=True)
class Origin:
    """Where an input message came from."""

    topic: str
    partition: int
    offset: int

    def dead(self, raw: bytes, reason: str, field: str, message: str) -> DeadLetter:
        return DeadLetter(raw, self.topic, self.partition, self.offset, reason, field, message)
