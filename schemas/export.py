"""JSON Schema files for publishers and consumers, exported from the models.

``python -m schemas.export`` writes ``schemas/jsonschema/``; a test
fails when the committed files differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.contracts.actions import DispatchAction
from schemas.contracts.alerts import DepartmentAlert
from schemas.contracts.broadcasts import BroadcastReceipt, EmergencyBroadcast
from schemas.contracts.events import GridReport, NormalisedEvent
from schemas.contracts.signals import CentreNotice, RiskSignal

# file stem -> (model, mode): what publishers send is validated; what fengqiao emits is serialised.
CONTRACTS: dict[str, tuple[type[BaseModel], str]] = {
    "grid-report": (GridReport, "validation"),
    "department-alert": (DepartmentAlert, "validation"),
    "emergency-broadcast": (EmergencyBroadcast, "validation"),
    "broadcast-receipt": (BroadcastReceipt, "validation"),
    "dispatch-action": (DispatchAction, "validation"),
    "normalised-event": (NormalisedEvent, "serialization"),
    "risk-signal": (RiskSignal, "serialization"),
    "centre-notice": (CentreNotice, "serialization"),
}
DIRECTORY = Path(__file__).parent / "jsonschema"


def rendered() -> dict[str, str]:
    """Each contract's JSON Schema as the text of its file."""
    out = {}
    for stem, (model, mode) in CONTRACTS.items():
        schema = model.model_json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://fengqiao.invalid/schemas/{stem}.schema.json"
        out[f"{stem}.schema.json"] = json.dumps(schema, ensure_ascii=False, indent=2) + "\n"
    return out


def export(directory: Path = DIRECTORY) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in export(Path(sys.argv[1]) if len(sys.argv) > 1 else DIRECTORY):
        print(path)
