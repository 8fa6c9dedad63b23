import pytest

from schemas.reference.regions import CENTRE_LEVELS, Level, UnknownRegion, level_of_centre, registry


def test_real_district_codes_of_the_four_cities():
    reg = registry()
    assert reg.get("210202000000").name == "中山区"  # 大连
    assert reg.get("210102000000").name == "和平区"  # 沈阳
    assert reg.get("220402000000").name == "龙山区"  # 辽源
    assert reg.get("630202000000").name == "乐都区"  # 海东
    for city in ("2101", "2102", "2204", "6302"):
        region = reg.get(city)
        assert region.level is Level.city and not region.synthetic


def test_abolished_units_are_kept_and_marked():
    old = registry().get("210282000000")
    assert old.status == "abolished" and old.successor == "210214000000"
    assert old not in registry().of_level(Level.county)


def test_streets_communities_and_grids_are_generated_and_marked_synthetic():
    reg = registry()
    grid = reg.get("210202001001003")
    assert grid.level is Level.grid and grid.synthetic
    chain = [r.level for r in reg.ancestors(grid.code)]
    assert chain == [Level.grid, Level.community, Level.township, Level.county, Level.city, Level.province]
    assert all(r.synthetic for r in reg.ancestors(grid.code)[:3])
    assert len(reg.of_level(Level.grid)) > 1000


def test_a_code_resolves_to_its_centre_at_each_level():
    centres = registry().centres("210202001001003")
    assert centres == {
        Level.community: "210202001001",
        Level.township: "210202001",
        Level.county: "210202",
        Level.city: "2102",
    }
    assert [level_of_centre(c) for c in centres.values()] == list(CENTRE_LEVELS)
    assert registry().centres("210202000000") == {Level.county: "210202", Level.city: "2102"}
    with pytest.raises(ValueError):
        registry().centre("210202000000", Level.community)


def test_jurisdiction_and_names():
    reg = registry()
    assert reg.is_within("210202001001", "210202")
    assert not reg.is_within("210203001001", "210202")
    assert reg.full_name("210202001001") == "大连市中山区模拟街道01模拟社区01"
    with pytest.raises(UnknownRegion):
        reg.get("999999999999")
