"""Webhooks (推送): a centre's notices POSTed to the centre's own systems, signed.

Each notice goes to every hook of its centre as JSON, signed: ``X-Fengqiao-Signature:
sha256=<hex>`` is HMAC-SHA256 under the hook's secret over ``<X-Fengqiao-Timestamp>.<body>``.
A delivery that fails (a timeout, a connection error, any status but 2xx) is retried with
exponential backoff (``Retry``); the delivery loop is ``streams.worker.notifier``.

Hooks file (``FENGQIAO_WEBHOOKS_FILE``, YAML)::

    hooks:
      - centre: "210202"            # the centre whose notices go there
        url: https://zz.example.gov.cn/fengqiao/notices
        secret_env: HOOK_210202     # the secret, from this environment variable
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Hook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    centre: str = Field(pattern=r"^(\d{4}|\d{6}|\d{9}|\d{12})$")
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(default="", repr=False, description="prefer secret_env")
    secret_env: str = ""

    @model_validator(mode="after")
    def has_secret(self) -> Hook:
        if not (self.secret or os.environ.get(self.secret_env)):
            raise ValueError(f"hook for {self.centre}: set secret_env to a variable holding the secret")
        return self

    @property
    def key(self) -> bytes:
        return (self.secret or os.environ[self.secret_env]).encode()


def load_hooks(path: Path) -> dict[str, list[Hook]]:
    """The hooks by centre code; a wrong entry stops the start with its position and reason."""
    raw = yaml.safe_load(path.read_text("utf-8")) or {}
    by_centre: dict[str, list[Hook]] = defaultdict(list)
    for n, entry in enumerate(raw.get("hooks") or [], 1):
        try:
            hook = Hook.model_validate(entry)
        except ValueError as exc:
            raise ValueError(f"{path}: hook {n}: {exc}") from None
        by_centre[hook.centre].append(hook)
    return dict(by_centre)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Retry:
    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 60.0
    timeout: float = 5.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so that many retries do not arrive together."""
        return min(self.max_delay, self.first_delay * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


