"""Addresses folded to building keys: one building whatever the wording, two buildings never one."""

import pytest

from streams.intake.addresses import building_key, chinese_number


@pytest.mark.parametrize("address", ["7号楼", "7栋", "七号楼", "７栋", "7幢", "7#楼", "7#", "七栋2单元301室",
                                     "7号楼二单元302", "7-2-301", " 7 号楼 "])
def test_every_way_of_writing_building_seven_is_one_key(address):
    assert building_key(address) == "7栋"


@pytest.mark.parametrize(("a", "b"), [("7号楼", "9号楼"), ("7号楼", "17号楼"), ("阳光小区7栋", "明珠小区7栋"),
                                      ("十二号楼", "二十一号楼")])
def test_different_buildings_stay_apart(a, b):
    assert building_key(a) != building_key(b)


def test_what_comes_before_the_building_is_kept_and_the_unit_and_room_are_not():
    assert building_key("阳光小区七号楼2单元301") == building_key("阳光小区 7栋 3单元 502室") == "阳光小区7栋"
    assert building_key("人民路１２号院３号楼") == "人民路12号院3栋"
    assert building_key("B座1201") == "B栋"
    assert building_key("小区东门") == "小区东门"  # no building named: the folded text itself


@pytest.mark.parametrize(("text", "n"), [("七", 7), ("十", 10), ("十二", 12), ("二十一", 21), ("一百零五", 105),
                                          ("两", 2), ("一零五", 105)])
def test_chinese_numerals(text, n):
    assert chinese_number(text) == n
