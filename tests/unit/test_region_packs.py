"""Region packs end to end through the command line: a real community's report, an import that
is refused naming its line, and a new version that keeps the old codes resolving."""

import json

import pytest

from schemas.reference.regions import BUNDLED, Level, registry, use_pack
from streams.cli.main import main
from streams.intake.identity import Pseudonymiser
from streams.intake.validation import Accepted, Origin, Validator
from streams.notify.routing import route
from tests.helpers import T0, grid_report
from tests.unit.test_correlation import event, run

CHUNHAI = "210202001002"  # 大连市中山区海军广场街道春海社区居委会, a real community committee


def test_a_grid_report_from_a_real_dalian_community_validates_and_routes_to_its_centre():
    report = grid_report(1, community=CHUNHAI)
    accepted = Validator(Pseudonymiser(b"k")).grid_report(json.dumps(report).encode(), Origin("g", 0, 1), T0)
    assert isinstance(accepted, Accepted)
    (normalised,) = accepted.events
    assert normalised.region_code == CHUNHAI and normalised.grid_code == f"{CHUNHAI}001"
    signal = run([event(n, community=CHUNHAI) for n in (1, 2, 3)])[0].signal
    handle, inform = route(signal, T0)
    assert (handle.centre_code, handle.role.value, inform.centre_code) == (CHUNHAI, "handle", "210202001")
    assert handle.place == "大连市中山区海军广场街道春海社区居委会"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FENGQIAO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FENGQIAO_REGION_PACK", raising=False)
    yield tmp_path
    use_pack(None)  # the bundled pack again for the tests that follow


def test_an_import_with_an_orphan_or_a_short_code_is_refused_naming_the_line(data_dir, capsys):
    table = data_dir / "broken.csv"
    table.write_text("# pack: dl-2025\ncode,name,level,parent,valid_from,valid_to,status,successor,note\n"
                     "210000000000,辽宁省,province,,,,active,,\n"
                     "210200000000,大连市,city,210000000000,,,active,,\n"
                     "210202009001,无主社区,community,210202009000,,,active,,\n"
                     "2102020010,短码,township,210200000000,,,active,,\n", encoding="utf-8")
    assert main(["regions", "import", str(table)]) == 2
    err = capsys.readouterr().err
    assert "line 6: code '2102020010' is not 12 digits" in err
    assert "line 5: 210202009001's parent 210202009000 is not in the table" in err
    assert not (data_dir / "regions").exists()


def test_an_imported_version_is_chosen_by_setting_and_the_old_codes_still_resolve(data_dir, monkeypatch, capsys):
    from schemas.reference.regions import bundled_text

    bundled = bundled_text().splitlines()
    # 2025: 春海 and 春景 merged into a new 春海景社区 (a made-up change); everything else as in 2023
    kept = [line for line in bundled if not line.startswith(("#", "210202001002,", "210202001003,"))]
    merged = "210202001099,春海景社区居委会,community,210202001000,2025-01-01,,active,,merged in 2025"
    table = data_dir / "dl-2025.csv"
    table.write_text("# pack: dl-2025\n# source: a deployment's own table (test)\n" + "\n".join([*kept, merged]) + "\n",
                     encoding="utf-8")
    assert main(["regions", "import", str(table)]) == 0
    assert "2 codes of cn-2023 it no longer lists kept as abolished" in capsys.readouterr().out
    monkeypatch.setenv("FENGQIAO_REGION_PACK", "dl-2025")
    assert main(["regions", "show", "210202001002"]) == 0
    shown = capsys.readouterr().out
    assert "春海社区居委会 (community, abolished)" in shown
    assert registry().version == "dl-2025" and registry().get("210202001099").level is Level.community
    assert main(["regions", "import", str(table)]) == 2  # a version is installed once
    assert main(["regions", "list"]) == 0
    listed = capsys.readouterr().out
    assert BUNDLED in listed and "dl-2025" in listed


def test_a_grid_register_replaces_the_synthetic_grids_and_an_unknown_grid_is_dead_lettered(data_dir, capsys):
    register = data_dir / "register.csv"
    register.write_text("grid_code,community,name,type,households,workers\n"
                        f"{CHUNHAI}101,{CHUNHAI},春海一网格,综合网格,412,GW0101;GW0102\n"
                        f"{CHUNHAI}901,{CHUNHAI},春海医院专属网格,专属网格,0,GW0901\n", encoding="utf-8")
    broken = data_dir / "broken.csv"
    broken.write_text("grid_code,community,name,type,households,workers\n"
                      f"{CHUNHAI}101,210202001003,错社区,综合网格,10,\n"
                      f"{CHUNHAI}102,{CHUNHAI},,大网格,10,\n", encoding="utf-8")
    assert main(["grids", "import", str(broken)]) == 2
    err = capsys.readouterr().err
    assert f"line 2: grid {CHUNHAI}101 is not inside community 210202001003" in err
    assert "line 3: type '大网格' is not 综合网格 or 专属网格" in err

    assert main(["grids", "import", str(register)]) == 0
    assert "2 grids in 1 communities" in capsys.readouterr().out
    reg = registry()
    assert reg.get(f"{CHUNHAI}101").name == "春海一网格" and not reg.get(f"{CHUNHAI}101").synthetic
    assert reg.grids[f"{CHUNHAI}901"].type == "专属网格" and reg.grids[f"{CHUNHAI}101"].workers == ("GW0101", "GW0102")
    validator = Validator(Pseudonymiser(b"k"))
    known = grid_report(1, community=CHUNHAI, grid_code=f"{CHUNHAI}101")
    assert isinstance(validator.grid_report(json.dumps(known).encode(), Origin("g", 0, 1), T0), Accepted)
    unknown = grid_report(2, community=CHUNHAI)  # grid 001: synthetic before, not in the register
    letter = validator.grid_report(json.dumps(unknown).encode(), Origin("g", 0, 2), T0)
    assert letter.reason == "unknown_grid" and letter.field == "grid_code"
    assert f"unknown grid {CHUNHAI}001" in letter.message
