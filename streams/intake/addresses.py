"""Addresses to building keys (楼栋标准化): one building, whatever the wording.

Grid workers and devices write the same building many ways: 7号楼, 7栋, 七号楼, ７幢, 7#楼, 7座,
or 7-2-301 (building, unit, room). Rules that group by building need one key for all of them.
``building_key`` folds full-width characters (NFKC), writes Chinese numerals as digits, drops
spaces and punctuation, and cuts the address after its building: what comes before it (an estate,
a road and number) is kept, the unit (单元) and room (室) after it are not. An address with no
building in it keeps its whole folded text. The original address is kept beside the key.
"""

from __future__ import annotations

import re
import unicodedata

DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
NUMERAL = r"[零〇一二两三四五六七八九十百]+"
# a building: its number and its marker (号楼, 栋, 幢, 座, 号院楼, #楼, #), or the first number of N-N-N
BUILDING = re.compile(r"(?P<n>[0-9]+|[A-Za-z])(?:号楼|号栋|号幢|栋|幢|座|#楼|#|号?楼)")
DASHED = re.compile(r"(?P<n>[0-9]+)-[0-9]+-[0-9]+")
NOISE = re.compile(r"[\s,，.。、·:：;；()（）\[\]【】\"'“”]")


def chinese_number(text: str) -> int:
    """七 → 7, 十二 → 12, 二十一 → 21, 一百零五 → 105, 两 → 2; digits one by one (一零五 → 105)."""
    if "十" not in text and "百" not in text:
        return int("".join(str(DIGITS[c]) for c in text))
    total, current = 0, 0
    for c in text:
        if c == "百":
            total += (current or 1) * 100
            current = 0
        elif c == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = DIGITS[c]
    return total + current


def fold(address: str) -> str:
    """Full-width to half-width, Chinese numerals before a unit word to digits, no spaces or punctuation."""
    text = NOISE.sub("", unicodedata.normalize("NFKC", address))
    return re.sub(rf"{NUMERAL}(?=号|栋|幢|座|楼|单元|室|层|#)", lambda m: str(chinese_number(m.group())), text)


def building_key(address: str) -> str:
    """The building an address names, as one key: 阳光小区七号楼2单元301 → 阳光小区7栋."""
    text = fold(address)
    found = BUILDING.search(text) or DASHED.search(text)
    if found is None:
        return text
    return f"{text[:found.start()]}{found.group('n').upper()}栋"
