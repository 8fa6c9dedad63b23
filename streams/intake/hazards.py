"""Weather hazards (气象灾害): one name for a warning whichever way it arrives, so that a rule
reads ``attributes.hazard`` and is triggered alike by a weather bureau's department alert
(``weather.cold_wave``) and by a CAP alert whose event is 寒潮蓝色预警 or "Cold Wave Warning".

The names are those of the national warning signals (气象灾害预警信号: 台风、暴雨、暴雪、寒潮、
大风、高温 …) and their usual English forms in CAP feeds.
"""

from __future__ import annotations

import re

# hazard -> what names it, Chinese first; the first hazard whose pattern is found wins, so the
# longer and more specific names come before those they contain.
HAZARDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (hazard, re.compile(pattern, re.IGNORECASE)) for hazard, pattern in (
        ("cold_wave", r"寒潮|cold[\s_-]*wave|cold[\s_-]*spell|extreme[\s_-]*cold"),
        ("blizzard", r"暴雪|blizzard|snow[\s_-]*storm|heavy[\s_-]*snow"),
        ("heat_wave", r"高温|heat[\s_-]*wave|extreme[\s_-]*heat|excessive[\s_-]*heat|high[\s_-]*temperature"),
        ("typhoon", r"台风|typhoon|tropical[\s_-]*(storm|cyclone)|hurricane"),
        ("rainstorm", r"暴雨|rain[\s_-]*storm|heavy[\s_-]*rain|torrential"),
        ("gale", r"大风|gale|strong[\s_-]*wind|high[\s_-]*wind"),
    ))
DEPARTMENT_HAZARDS = frozenset(h for h, _ in HAZARDS)  # weather.<hazard> of the weather bureau


def hazard_of(*texts: str) -> str:
    """The hazard a warning's texts name (its CAP event, then its headline), or ''."""
    for text in texts:
        for hazard, pattern in HAZARDS:
            if text and pattern.search(text):
                return hazard
    return ""
