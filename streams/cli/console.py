"""What the commands share: the live console of signals and notices, tables, stopping on signals."""

from __future__ import annotations

import asyncio
import signal
from typing import TextIO

from schemas.contracts.signals import CentreNotice, NoticeRole, RiskSignal
from schemas.reference.regions import CENTRE_LEVEL_NAMES

ROLE = {NoticeRole.handle: "承办", NoticeRole.inform: "知悉"}


class Console:
    """Shows signals and notices as they happen."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def on_signal(self, signal: RiskSignal, new: bool) -> None:
        kind = "新信号" if new else "信号更新"
        self._line(f"[{signal.updated_at:%H:%M:%S}] {kind} {signal.level.label()} {signal.rule_name} "
                   f"v{signal.version} {signal.signal_id}\n    {signal.summary}")

    def on_notice(self, notice: CentreNotice) -> None:
        self._line(f"    → 通知 {notice.centre_code} {CENTRE_LEVEL_NAMES[notice.centre_level]} "
                   f"{ROLE[notice.role]}，{notice.ack_due:%m-%d %H:%M} 前签收，{notice.close_due:%m-%d %H:%M} 前办结")


def stop_on_signals() -> asyncio.Event:
    """An event that Ctrl-C or SIGTERM sets: the command then stops everything in order."""
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    return stop


def print_table(rows: list[dict]) -> None:
    if not rows:
        print("(no rows)")
        return
    cells = [[str(v) for v in r.values()] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(rows[0])]
    print("  ".join(h.ljust(w) for h, w in zip(rows[0], widths)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
    print(f"({len(rows)} rows)")
