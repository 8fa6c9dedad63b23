"""The layers' dependency rule (DESIGN.md) holds, and breaking it is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([LINT_IMPORTS, "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def broken(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """The contract checked on a copy of the tree where ``module`` (a path under streams/) gains ``line``."""
    for name in ("streams", "schemas"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "streams" / module
    path.write_text(path.read_text("utf-8") + f"\n{line}  # noqa\n", "utf-8")
    return lint(tmp_path)


def test_the_import_contract_is_kept():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_tools_import_from_detection_breaks_it(tmp_path):
    done = broken(tmp_path, "detection/ruleset.py", "from streams.tools import simulator")
    assert done.returncode != 0
    assert "only the CLI reaches the tools BROKEN" in done.stdout
    assert "the domain knows nothing of the worker, the interfaces or the tools BROKEN" in done.stdout


def test_a_domain_import_from_the_runtime_breaks_it(tmp_path):
    done = broken(tmp_path, "runtime/runner.py", "from streams.detection import windows")
    assert done.returncode != 0 and "the runtime knows nothing of the domain BROKEN" in done.stdout
