"""The front door and the guides say what the code does: the README is short, the reference
tables are generated from the code, and every function the architecture names exists."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.reports import reference

ROOT = Path(__file__).parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
DOTTED = re.compile(r"`((?:streams|schemas)(?:\.\w+)+)`")


def resolve(name: str) -> object:
    """The object a dotted name means: the longest importable module, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(name)


def test_the_readme_is_a_short_front_door():
    readme = (ROOT / "README.md").read_text("utf-8")
    assert len(readme.encode()) <= 8 * 1024
    for guide in ("operators", "departments", "analysts", "rule-authors", "operations", "architecture"):
        assert f"docs/{guide}.md" in readme


def test_every_link_of_the_readme_and_the_guides_leads_somewhere():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: {target}"


def test_the_reference_tables_are_what_the_code_says():
    """Configuration, topics, rules and metrics are generated (fengqiao docs writes them)."""
    assert reference.stale() == [], "run `fengqiao docs` to write the tables from the code"
    text = "".join(p.read_text("utf-8") for p in (ROOT / "docs").glob("*.md"))
    assert all(f"<!-- generated: {name} -->" in text for name in reference.TABLES)


def test_every_name_on_a_reports_path_exists_in_the_code():
    path = ARCHITECTURE.read_text("utf-8").split("## One grid report", 1)[1].split("\n## ", 1)[0]
    names = DOTTED.findall(path)
    assert len(names) >= 25
    for name in names:
        assert callable(resolve(name)), name
    order = [n for n in names if n.startswith("streams.")]
    assert order.index("streams.worker.validate.Validate.process") < order.index(
        "streams.worker.correlate.Correlate.process") < order.index("streams.notify.planning.plan") < order.index(
        "streams.store.clickhouse.Store.insert")


def test_a_wrong_name_is_found():
    with pytest.raises(AttributeError):
        resolve("streams.worker.validate.Validate.no_such_step")


def test_the_worker_image_leaves_the_tools_out():
    ignored = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    assert "streams/tools/" in ignored
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text("utf-8")
    assert "test ! -e streams/tools" in dockerfile  # the build fails should the tools come in anyway


def test_the_command_works_without_the_tools(tmp_path):
    """The worker image has no streams/tools: the fengqiao command still starts there."""
    for package in ("streams", "schemas"):
        subprocess.run(["cp", "-r", str(ROOT / package), str(tmp_path / package)], check=True)
    subprocess.run(["rm", "-rf", str(tmp_path / "streams" / "tools")], check=True)
    # The development install finds modules in the work tree: an image has no such finder.
    script = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in repr(f)]; "
              "import streams; from streams.cli import main; print(streams.__file__); "
              "raise SystemExit(main(['--help']))")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(tmp_path)), "the copy without the tools was imported"
    assert "worker" in done.stdout and "drill" not in done.stdout
