import pytest

from schemas.levels import RiskLevel
from streams.ruleset import RuleError, load_rules, parse_duration


def test_the_bundled_pack_loads():
    rules = {r.id: r for r in load_rules()}
    rule = rules["dispute_cluster"]
    assert rule.threshold == 3 and rule.level is RiskLevel.yellow
    assert rule.window == parse_duration("24h") and "art." in rule.basis


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("id: x\nname: n\nbasis: b\ntype: event_count\nfilter: {colour: red}\ngroup_by: {}\n"
         "window: 1h\nthreshold: 2\nlevel: blue\nsummary: s\n", "unknown field 'colour'"),
        ("id: x\nname: n\nbasis: b\ntype: event_count\nfilter: {}\ngroup_by: {}\n"
         "window: soon\nthreshold: 2\nlevel: blue\nsummary: s\n", "window"),
        ("id: x\nname: n\nbasis: b\ntype: event_count\nfilter: {}\ngroup_by: {}\n"
         "window: 1h\nthreshold: 2\nlevel: purple\nsummary: s\n", "level"),
        ("id: [unclosed", "not valid YAML"),
    ],
)
def test_a_wrong_rule_names_the_file_and_the_reason(tmp_path, text, needle):
    (tmp_path / "bad_rule.yaml").write_text(text)
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path)
    assert "bad_rule.yaml" in str(err.value) and needle in str(err.value)
