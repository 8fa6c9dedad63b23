from streams.intake.identity import Pseudonymiser, check_digit, valid_id_number
from tests.helpers import MOBILE, id_number

P = Pseudonymiser(b"test-key")


def test_id_number_checksum():
    good = id_number(5)
    assert valid_id_number(good)
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    assert not valid_id_number(bad)
    assert check_digit("11010519491231002") == "X"  # the GB 11643 example
    assert valid_id_number("11010519491231002x")


def test_one_person_one_pseudonym_across_sources():
    idn = id_number(3)
    by_grid = P.person("张伟", "210202001004", id_number=idn, phone="13812345678")
    by_police = P.person("张 伟", "999999999999", id_number=idn.lower())
    assert by_grid == by_police
    assert P.person("张伟", "210202001004", phone="138-1234-5678") == P.phone("13812345678")
    assert P.name("张伟", "210202001004") != P.name("张伟", "210202001002")
    assert Pseudonymiser(b"other").id_number(idn) != P.id_number(idn)


def test_masking_free_text():
    idn = id_number(4)
    text = f"张伟（身份证{idn}，电话+86 13812345678）与李娜争吵，订单号123456789012345678"
    masked = P.mask_text(text, {"张伟": P.name("张伟", "c"), "李娜": P.name("李娜", "c")})
    assert idn not in masked and "13812345678" not in masked
    assert "张伟" not in masked and "李娜" not in masked
    assert "123456789012345678" not in masked and "[号码 " in masked  # no birth date in it: a number, masked
    assert MOBILE.search(masked) is None


def test_masking_raw_input_of_unknown_shape():
    raw = '{"parties": [{"name": "王芳", "phone": "13512345678"}], "text": "王芳反映", "cut": "tru'
    masked = P.mask_raw(raw)
    assert "王芳" not in masked and "13512345678" not in masked
