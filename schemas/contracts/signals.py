"""Risk signals (风险信号), their evidence, and centre notices (中心通知).

Ids are deterministic: a signal id comes from (rule, entity, window anchor) and a notice id from
(signal id, centre), so a replay or a restart produces the same ids and every sink is idempotent.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.contracts.events import Source
from schemas.contracts.levels import RiskLevel
from schemas.reference.regions import Level


def stable_id(prefix: str, *parts: str) -> str:
    """A short deterministic id: ``prefix-`` and 20 hex digits of SHA-256 over the parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]
    return f"{prefix}-{digest}"


class Evidence(BaseModel):
    """One event that contributed to a signal (证据)."""

    model_config = ConfigDict(frozen=True)

    uid: str
    source: Source
    category: str
    occurred_at: datetime
    device: str = Field(default="", description="the IoT device that sent it (attributes.device_id), if one did")


class LateEvent(BaseModel):
    """An event that reached a rule after its group's windows had closed (迟到事件): not counted
    by the rule, counted and kept here, with the signal of its group it would have changed."""

    model_config = ConfigDict(frozen=True)

    uid: str
    rule_id: str
    entity: str = Field(description="the rule's group the event belongs to")
    region_code: str
    occurred_at: datetime
    late_by_s: float = Field(description="how far behind its group's latest event, less the window and lateness")
    signal_id: str = Field(default="", description="the signal of its group it would have changed, if any")
    noted_at: datetime
    drill: bool = False


class PersonLink(BaseModel):
    """Which person an identifier names in a county (同人关联), as the correlator linked it: an ID
    number and a mobile named together for one person, a name with either. Pseudonyms only."""

    model_config = ConfigDict(frozen=True)

    county: str = Field(description="6 digits: links are kept per county")
    identifier: str = Field(description="the pseudonym of an ID number, a mobile or a name, as in events.subjects")
    kind: Literal["id_number", "mobile", "name"]
    person: str = Field(description="the person pseudonym signals name (one of the person's identifier pseudonyms)")
    shared: bool = Field(description="named with two people (a household's phone, two of one name): alone it "
                         "names neither")
    region_code: str = Field(description="where the event that made the link happened")
    linked_by: str = Field(description="the event (uid) that made or changed the link")
    linked_at: datetime = Field(description="that event's time")
    changed_at: datetime = Field(description="when the correlator made the change: the row's version")


class RiskSignal(BaseModel):
    """A correlated risk signal. A later version of the same id replaces the earlier one."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    signal_id: str
    version: int = Field(ge=1, description="rises with every update: more evidence or a higher level")
    rule_id: str
    rule_name: str
    level: RiskLevel
    entity_level: Level = Field(description="the level the rule groups by, e.g. community")
    entity: str = Field(description="the group value, e.g. a 12-digit community code")
    region_code: str = Field(description="12-digit division code the signal is about")
    window_start: datetime
    window_end: datetime
    raised_at: datetime
    updated_at: datetime
    evidence: list[Evidence]
    summary: str = Field(description="a short Chinese summary for operators")
    rule_chain: list[str] = Field(description="rules that produced it, first to last")
    drill: bool = False
    rule_version: str = Field(default="", description="the version (fingerprint) of the rule that raised it, as "
                              "fengqiao.rule_changes records it; empty for entity_risk")
    silenced_by: list[str] = Field(default_factory=list, description="the silences (静默) that held it back: stored "
                                   "and shown, no centre paged")
    answered_at: datetime | None = Field(default=None, description="迟到回应: an absence signal's expected event "
                                         "happened then, before the deadline, but reached fengqiao after the signal "
                                         "was raised: the signal stands answered and its case closes itself")

    @staticmethod
    def make_id(rule_id: str, entity: str, anchor: datetime) -> str:
        return stable_id("sig", rule_id, entity, anchor.isoformat())


class RuleChange(BaseModel):
    """A rule as a worker loaded it, or as a reload changed it (规则版本留痕): with the signals'
    ``rule_version``, which version of a rule put a place on yellow, and since when it ran."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    change: Literal["loaded", "added", "changed", "removed"] = Field(
        description="loaded: in the pack a worker started with; the others: what a reload did")
    version: str = Field(description="the fingerprint running after the change (empty when removed)")
    previous_version: str = Field(default="", description="the fingerprint before a change or removal")
    changed_at: datetime
    worker: str = Field(description="host:pid of the worker that loaded it")
    definition: str = Field(default="", description="the rule as JSON, without its cases (empty when removed)")


class NoticeRole(str, enum.Enum):
    handle = "handle"  # 承办: the lowest notified centre handles
    inform = "inform"  # 知悉: higher centres are informed
    supervise = "supervise"  # 督办: a deadline was missed below; the centre above follows it up


class CentreNotice(BaseModel):
    """What a centre is told about a signal. Keyed by centre code on ``centre-notices``."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    notice_id: str
    signal_id: str
    signal_version: int
    centre_code: str = Field(description="4, 6, 9 or 12 digits: city, county, street, community")
    centre_level: Level
    role: NoticeRole
    level: RiskLevel
    rule_id: str
    region_code: str
    summary: str
    ack_due: datetime
    close_due: datetime
    created_at: datetime
    drill: bool = False
    is_update: bool = Field(default=False, description="more evidence for a notice already sent: update it "
                                                       "in place, do not page again (更新，非新警情)")
    entity_level: str = Field(default="", description="what the signal is about: community, building, person, …")
    entity: str = Field(default="", description="which one: a code, a building key, a person pseudonym, …")
    place: str = Field(default="", description="the region's names from the city down (大连市中山区…社区)")
    case_url: str = Field(default="", description="the case's page on the console; empty where the console's "
                          "address is not configured (FENGQIAO_CONSOLE_URL)")
    matters: list[str] = Field(default_factory=list, description="the grid matters (事项清单) the signal's evidence "
                               "reports: what the negative list (负面清单) is checked against when it is assigned")
    joins: list[str] = Field(default_factory=list, description="the signals this one rests on (a chained rule's, "
                             "an entity risk's evidence): at a centre handling one of them, it joins that case "
                             "rather than opening another (并案: one case per incident)")
    answered_at: datetime | None = Field(default=None, description="迟到回应: the signal's expected event happened "
                                         "then, in time, and reached fengqiao late: the handling centre's case "
                                         "closes itself")

    @staticmethod
    def case_link(console: str, signal_id: str) -> str:
        """The case page of ``signal_id`` on the console at ``console`` ('' when unknown)."""
        return f"{console.rstrip('/')}/cases/{signal_id}" if console else ""

    @staticmethod
    def make_id(signal_id: str, centre_code: str) -> str:
        return stable_id("ntc", signal_id, centre_code)
