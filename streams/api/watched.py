"""A file the gateway reads again whenever it changed on disk: the API keys, the operators."""

from __future__ import annotations

from pathlib import Path


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

    def forget(self) -> None:
        """Read it again next time, changed or not (after writing it here)."""
        self._seen = None
