"""Tables that people keep and import (区划包, 网格台账, 特殊人群名册): CSV with a header, read
row by row with the line each row is on, so that every refusal can name its line."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence


def numbered_rows(text: str, required: Sequence[str], columns: Sequence[str],
                  refuse: Callable[[list[str]], Exception], what: str) -> list[tuple[int, dict[str, str]]]:
    """(line, row with its values stripped) for each row below the header; blank lines and
    ``#`` lines are skipped. ``refuse`` makes the error raised when ``what`` is empty or its
    header lacks a ``required`` column (``columns``: all it may have, said in the message)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise refuse([f"{what} is empty"])
    reader = csv.DictReader(line for _, line in lines)
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise refuse([f"line {lines[0][0]}: no column {', '.join(missing)} (columns: {', '.join(columns)})"])
    return [(n, {k: (v or "").strip() for k, v in row.items() if k}) for (n, _), row in zip(lines[1:], reader)]
