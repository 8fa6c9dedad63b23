"""The register of special populations (特殊人群名册) as civil affairs keeps it, read into the
department alerts that register and deregister each person (``civil_affairs.population_
registered`` / ``_deregistered``), so that a file import and a live registration take one path:
validation, pseudonymisation at intake, the worker's register rules.

The file is a CSV with a header: ``id_number,name,phone,population,community,on,action``.
``population`` is a code of schemas/populations.yaml (or its Chinese name), ``on`` the date
(2026-12-01), ``action`` ``registered`` (default) or ``deregistered`` (登记 / 注销 also read).
Identifiers stay in the file and the alerts: only the worker's intake pseudonymises them, and the
alerts' ids are keyed digests that say nothing of the person.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from schemas.contracts.events import BEIJING
from schemas.reference.populations import populations
from schemas.reference.tables import numbered_rows
from streams.intake.identity import Pseudonymiser, valid_id_number

COLUMNS = ("id_number", "name", "phone", "population", "community", "on", "action")
ACTIONS = {"registered": "registered", "登记": "registered", "deregistered": "deregistered", "注销": "deregistered"}


class RegisterError(ValueError):
    """A register file that cannot be read: every failing line, with its reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def registrations(text: str, pseudonymiser: Pseudonymiser, known: set[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line, department alert) for each row; ``known``: the active communities of the region
    pack. Refuses the whole file, naming each line, when any row is wrong."""
    rows = numbered_rows(text, [c for c in COLUMNS if c not in ("phone", "action")], COLUMNS, RegisterError,
                         "the register")
    by_name = {name: code for code, name in populations().items()}
    found, problems = [], []
    for n, row in rows:
        kind = by_name.get(row["population"], row["population"])
        action = ACTIONS.get(row.get("action") or "registered")
        why = ""
        if not valid_id_number(row["id_number"]):
            why = "id_number is not a valid resident ID number (18 digits, its check digit right)"
        elif not row["name"]:
            why = "no name"
        elif kind not in populations():
            why = f"population {row['population']!r} is not one of {', '.join(populations())}"
        elif row["community"] not in known:
            why = f"community {row['community']!r} is not an active community of the region pack"
        elif action is None:
            why = f"action {row.get('action')!r} is not registered or deregistered"
        else:
            try:
                on = date.fromisoformat(row["on"])
            except ValueError:
                why = f"on {row['on']!r} is not a date like 2026-12-01"
        if why:
            problems.append(f"line {n}: {why}")
            continue
        person = {"name": row["name"], "id_number": row["id_number"], **({"phone": row["phone"]} if row.get("phone") else {})}
        event_id = "register-" + pseudonymiser.record(row["id_number"].upper(), kind, action, on.isoformat())[2:]
        found.append((n, {
            "event_id": event_id, "department": "civil_affairs", "category": f"population_{action}",
            "location": {"region_code": row["community"]}, "subjects": [person],
            "attributes": {"population": kind},
            "text": f"{populations()[kind]}{'登记' if action == 'registered' else '注销'}",
            "occurred_at": datetime(on.year, on.month, on.day, tzinfo=BEIJING).isoformat(),
        }))
    if problems:
        raise RegisterError(problems)
    return found


def rows_naming(text: str, pseudonymiser: Pseudonymiser, pseudonym: str) -> list[tuple[int, str, str]]:
    """(line, name, population) of the register's rows whose ID number has ``pseudonym``: the
    person a signal names, found by whoever already holds the register (再识别 stays with the
    holder of the file; fengqiao keeps no table from pseudonyms back to people)."""
    try:
        rows = numbered_rows(text, (), COLUMNS, RegisterError, "the register")
    except RegisterError:  # an empty file names no one
        return []
    return [(n, row.get("name", ""), row.get("population", "")) for n, row in rows
            if valid_id_number(row.get("id_number", "")) and pseudonymiser.id_number(row["id_number"]) == pseudonym]
