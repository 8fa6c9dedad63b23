"""Logging (日志) that keeps personal identifiers out, whatever the level.

Kafka clients log whole messages at DEBUG, and input messages carry ID numbers, mobile numbers
and names in clear (a DEBUG run once printed hundreds of them). So the loggers that log payloads
never go below INFO, and every record passes a filter that masks anything shaped like an ID
number, a mobile or landline number (however written) or a JSON name field, as a second guard.
"""

from __future__ import annotations

import logging

from streams.intake.identity import NAME_FIELD
from streams.intake.masking import find_numbers, replace

PAYLOAD_LOGGERS = ("aiokafka", "kafka")  # log message keys and values at DEBUG
LABELS = {"id_number": "[身份证]", "mobile": "[手机]", "landline": "[电话]", "number": "[号码]"}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    """``text`` with identifiers replaced by what they are."""
    text = replace(text, find_numbers(text), lambda found: LABELS[found.kind])
    return NAME_FIELD.sub(lambda m: m[0].replace(m[1], "[姓名]"), text)


class Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure(level: str) -> None:
    """Log at ``level`` to stderr, identifiers masked, payload loggers never below INFO."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(Redact())
    floor = max(logging.getLevelName(level.upper()), logging.INFO)
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(floor)
