"""The pure rules of ``streams.intake.masking``: what is an identifier and what is not."""

import pytest

from streams.intake.masking import classify, find_identifiers, find_numbers, fold


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in find_identifiers(text)]


def test_folding_keeps_every_position():
    text = "电话：１３８－１２３４－５６７８　（全角）"
    assert len(fold(text)) == len(text) and "138-1234-5678" in fold(text)


@pytest.mark.parametrize("digits,kind", [
    ("13812345678", "mobile"), ("8613812345678", "mobile"), ("008613812345678", "mobile"),
    ("041184567890", "landline"), ("02423456789", "landline"),
    ("210202198001011234", "id_number"), ("21020219800101123X", "id_number"),
    ("123456789012345678", "number"), ("6222021234567890123", "number"),
    ("12812345678", None), ("210202001004", None), ("20261204", None), ("1733299200123", None),
])
def test_what_a_run_of_digits_is(digits, kind):
    assert classify(digits) == kind


def test_a_number_is_found_with_its_prefix_separators_and_extension():
    assert kinds("请拨打(+86)138 1234 5678或（0411）84567890转206") == [
        ("mobile", "(+86)138 1234 5678"), ("landline", "（0411）84567890转206")]
    assert find_numbers("ID21020219800101123Xabc")[0].value == "21020219800101123X"


def test_look_alikes_are_left_alone():
    for text in ("坐标121.6147,38.9140", "drift=1.0015695780002716", "2026-12-04 08:30", "社区210202001004",
                 "事件GR-2026-000731", "积水0.35米"):
        assert find_numbers(text) == [], text
    assert find_numbers("座机 84567890")[0].kind == "landline"  # a local number, said to be one
    assert find_numbers("编号 84567890") == []


def test_names_by_jieba_and_by_the_words_around_them():
    assert kinds("独居老人赵桂兰今天未开门") == [("name", "赵桂兰")]
    assert kinds("朱大妈和邻居吵架，老赵劝开了") == [("name", "朱大妈"), ("name", "老赵")]
    assert kinds("欧阳娜娜的孩子没去上学") == [("name", "欧阳娜娜")]
    for text in ("向阳街道组织培训", "和平广场有人聚集", "于是大家一起清理", "马路上有人打架", "老师和学生"):
        assert kinds(text) == [], text
