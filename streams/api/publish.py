"""``fengqiao publish FILE``: a JSONL file or a CAP XML alert onto the right input topic.

For departments and the grid back-end. Each document is checked against its contract first:
what fails is listed with its line and field and not sent; what passes is sent and counted as
accepted only once the broker acknowledged it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from schemas.contracts.cap import looks_like_xml
from streams.intake.kinds import KINDS, Invalid, guess_kind, parse_document
from streams.runtime.kafka import Cluster


@dataclass
class PublishSummary:
    topic: str
    accepted: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # line, field, message


def documents(path: Path, kind: str | None) -> tuple[str, list[tuple[int, bytes]]]:
    """The file's kind and its documents with their line numbers."""
    raw = path.read_bytes()
    if looks_like_xml(raw):
        return kind or "emergency-broadcasts", [(1, raw)]
    lines = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    if kind is None and lines:
        try:
            first = json.loads(lines[0][1])
        except ValueError:
            first = {}
        kind = guess_kind(first) if isinstance(first, dict) else None
    if kind is None:
        raise ValueError(f"cannot tell what {path} holds; say --kind ({', '.join(KINDS)})")
    return kind, lines


async def publish(cluster: Cluster, path: Path, kind_name: str | None = None, progress: bool = True) -> PublishSummary:
    kind_name, docs = documents(path, kind_name)
    return await publish_documents(cluster, kind_name, docs, progress)


async def publish_documents(cluster: Cluster, kind_name: str, docs: list[tuple[int, bytes]],
                            progress: bool = True) -> PublishSummary:
    """Each document (with the line it came from) checked, and sent when it passes."""
    kind = KINDS[kind_name]
    summary = PublishSummary(kind.topic.name)
    producer = cluster.producer(acks="all", linger_ms=10)
    await producer.start()
    try:
        pending = []
        with tqdm(total=len(docs), unit="doc", desc=f"→ {kind.topic.name}", disable=not progress,
                  file=sys.stderr) as bar:
            for line, raw in docs:
                try:
                    model = parse_document(kind, raw)
                except Invalid as exc:
                    summary.rejected.extend({"line": line, **e} for e in exc.errors)
                else:
                    future = await producer.send(kind.topic.name, raw, key=kind.key(model).encode())
                    pending.append((line, kind.event_id(model), future))
                bar.update()
        for line, event_id, future in pending:
            try:
                await future
                summary.accepted.append(event_id)
            except Exception as exc:  # not acknowledged: reported, the publisher sends it again
                summary.rejected.append({"line": line, "field": "", "message": f"broker: {exc}"})
    finally:
        await producer.stop()
    return summary
