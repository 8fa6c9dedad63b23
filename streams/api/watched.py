"""A file the gateway reads again whenever it changed on disk: the API keys, the operators."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class WatchedFile:
    """Whether ``path`` is not the file read last (written since, replaced, removed): one ``stat``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None

    def changed(self) -> bool:
        """True once per change; a missing file has changed if it existed when last looked at."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            seen = None
        else:
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._seen and seen is not None:
            return False
        self._seen = seen
        return True

    def reread(self, parse: Callable[[Any], T], empty: T, refusing: str) -> T | None:
        """None when the file is the one read last; else ``parse`` of its JSON, ``empty`` when it is
        missing, and ``empty`` too when it cannot be read, logged with what that refuses (fail closed)."""
        if not self.changed():
            return None
        try:
            return parse(json.loads(self.path.read_text("utf-8"))) if self.path.exists() else empty
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("%s cannot be read (%s): %s until it is mended", self.path, exc, refusing)
            return empty

    def forget(self) -> None:
        """Read it again next time, changed or not (after writing it here)."""
        self._seen = None
