"""Recorded event files (事件录制与回放): write the simulator's inputs to a file, replay any such file.

A recording is JSON Lines, one input per line, in time order:
``{"at": "2026-11-20T08:00:03+08:00", "topic": "grid-reports", "key": "210202001004001", "value": {…}}``
(``value`` is the message exactly as its publisher sends it; ``value_text`` instead holds a
message that is not JSON, such as CAP XML). ``fengqiao replay FILE --speed X`` puts the lines on
their topics keeping their spacing in time, X times faster (``--speed 0``: as fast as the broker
takes them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from streams.runtime.kafka import Cluster


def write(path: Path, records: Iterable[tuple[datetime, str, bytes, Any]]) -> int:
    """Write ``(at, topic, key, value)`` records as a recording; returns how many."""
    n = 0
    with path.open("wb") as out:
        for at, topic, key, value in records:
            line = {"at": at.isoformat(), "topic": topic, "key": key.decode()}
            line["value" if not isinstance(value, str) else "value_text"] = value
            out.write(orjson.dumps(line) + b"\n")
            n += 1
    return n


def read(path: Path) -> list[tuple[datetime, str, bytes, bytes]]:
    """A recording's lines as ``(at, topic, key, message bytes)``; a bad line names its number."""
    out = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
            at = datetime.fromisoformat(doc["at"])
            body = doc["value_text"].encode() if "value_text" in doc else orjson.dumps(doc["value"])
            out.append((at, doc["topic"], str(doc.get("key", "")).encode(), body))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: not a recording line ({exc})") from exc
    return out


async def replay(cluster: Cluster, path: Path, speed: float, progress: bool = True) -> int:
    """Send a recording's lines to their topics, ``speed`` times faster than recorded."""
    lines = read(path)
    producer = cluster.producer(acks="all", linger_ms=5)
    await producer.start()
    loop = asyncio.get_running_loop()
    try:
        began, first = loop.time(), lines[0][0] if lines else None
        for at, topic, key, body in tqdm(lines, unit="event", disable=not progress):
            if speed > 0 and first is not None:
                delay = began + (at - first).total_seconds() / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.send(topic, body, key=key or None)
        await producer.flush()
    finally:
        await producer.stop()
    return len(lines)
