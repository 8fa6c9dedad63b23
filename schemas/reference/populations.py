"""The special populations (特殊人群) a deployment registers: ``populations.yaml``."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml


@cache
def populations() -> dict[str, str]:
    """Code -> Chinese name, in the file's order."""
    doc = yaml.safe_load(resources.files("schemas.reference").joinpath("populations.yaml").read_text("utf-8"))
    return dict(doc["populations"])
