"""Reference tables of the guides (参考表), generated from the code they describe.

The configuration variables (``Settings``), the topics (``streams.topics``), the rule pack and
the metrics are written into ``docs/`` between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``; ``fengqiao docs`` rewrites them, and a test fails when a guide
differs from what the code says.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pydantic_core import PydanticUndefined

from streams import topics
from streams.config import Settings
from streams.detection.ruleset import load_rules
from streams.metrics import Metrics

DOCS = Path(__file__).parents[2] / "docs"
_BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _row(*cells: str) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def configuration() -> str:
    """Every setting: its variable, its default, what it means."""
    rows = [_row("variable", "default", "meaning"), _row("---", "---", "---")]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "unset" if default is None or default is PydanticUndefined else f"`{default}`"
        if field.annotation is not None and "SecretStr" in str(field.annotation) and default is not None:
            shown = "a development value"
        rows.append(_row(f"`FENGQIAO_{name.upper()}`", shown, field.description or ""))
    return "\n".join(rows)


def topic_table() -> str:
    """The topics at a city's scale (``FENGQIAO_PARTITION_SCALE`` multiplies the partitions)."""
    rows = [_row("topic", "partitions", "key", "kept", "carries"), _row("---", "---", "---", "---", "---")]
    rows += [_row(f"`{s.name}`", str(s.base_partitions), s.key, _duration(s.retention) if s.retention else "for good",
                  s.doc) for s in topics.ALL]
    return "\n".join(rows)


def rule_table() -> str:
    """The bundled rule pack."""
    rows = [_row("rule", "name", "type", "window", "level", "basis"), _row("---", "---", "---", "---", "---", "---")]
    rows += [_row(f"`{r.id}`", r.name, r.type, _duration(r.window), r.level.value, r.basis) for r in load_rules()]
    return "\n".join(rows)


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def metric_table() -> str:
    """Every metric a process serves (counters end in ``_total`` when scraped)."""
    rows = [_row("metric", "type", "labels", "what it measures"), _row("---", "---", "---", "---")]
    metrics = Metrics()
    collectors = {c._name: c for c in vars(metrics).values() if hasattr(c, "_labelnames")}
    for family in sorted(metrics.registry.collect(), key=lambda f: f.name):
        collector = collectors[family.name]
        labels = ", ".join(f"`{label}`" for label in collector._labelnames)
        rows.append(_row(f"`{family.name}`", family.type, labels, family.documentation))
    return "\n".join(rows)


TABLES: dict[str, Callable[[], str]] = {
    "configuration": configuration, "topics": topic_table, "rules": rule_table, "metrics": metric_table,
}


def render(text: str) -> str:
    """``text`` with every generated block as the code has it now."""
    def block(m: re.Match[str]) -> str:
        return f"{m[1]}{TABLES[m['name']]()}\n{m[4]}"
    return _BLOCK.sub(block, text)


def stale(directory: Path = DOCS) -> list[Path]:
    """The guides whose generated tables differ from the code."""
    return [p for p in sorted(directory.rglob("*.md")) if render(p.read_text("utf-8")) != p.read_text("utf-8")]


def write(directory: Path = DOCS) -> list[Path]:
    """Rewrite the generated tables of every guide; returns the files changed."""
    changed = stale(directory)
    for path in changed:
        path.write_text(render(path.read_text("utf-8")), encoding="utf-8")
    return changed

