"""Log records never carry an identifier in clear."""

import logging

from streams.api.logs import Redact, redact
from tests.helpers import id_number


def test_identifiers_are_masked_and_look_alikes_are_not():
    text = f'{{"name": "张伟", "id_number": "{id_number(3)}", "phone": "13812345678"}} drift=1.0015695780002716'
    out = redact(text)
    assert "张伟" not in out and id_number(3) not in out and "13812345678" not in out
    assert "[姓名]" in out and "[身份证]" in out and "[手机]" in out
    assert "drift=1.0015695780002716" in out  # a float is not a phone number
    assert redact("order 123456789012345678") == "order [号码]"  # a long number may be a card: masked
    assert redact("offset=1733299200123 took 0.25s") == "offset=1733299200123 took 0.25s"


def test_the_filter_masks_the_formatted_message_and_the_traceback():
    record = logging.LogRecord("aiokafka", logging.DEBUG, __file__, 1, "Sending value=%r", (b"13812345678",), None)
    try:
        raise ValueError(f"bad {id_number(4)}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert Redact().filter(record)
    assert "13812345678" not in record.getMessage() and id_number(4) not in record.exc_text
