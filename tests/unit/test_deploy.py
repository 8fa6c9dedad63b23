"""The deployment, validated as it will be read: Compose against the Compose specification's
schema, Kubernetes manifests against Kubernetes' schemas (strict), yamllint on all of it, every
configuration file parsed, images pinned, and every FENGQIAO_ variable a real setting."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from defusedxml import ElementTree
from yamllint import linter
from yamllint.config import YamlLintConfig

from streams.config import Settings
from streams.runtime.kraft import kafka_version

DEPLOY = Path(__file__).parents[2] / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
MANIFESTS = sorted(p for p in (DEPLOY / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
KUBERNETES = ("1.31.0", "1.37.0")


def documents(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]


def test_compose_follows_the_compose_specification():
    tool = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifests_follow_the_kubernetes_schemas(path, version):
    docs = documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_kustomization_names_files_that_exist():
    kustomization = documents(DEPLOY / "k8s" / "kustomization.yaml")[0]
    here = DEPLOY / "k8s"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            assert (here / entry.split("=")[-1]).is_file(), entry
    assert (here / "secrets.example.env").is_file()
    dashboards = next(g for g in kustomization["configMapGenerator"] if g["name"] == "grafana-dashboards")
    assert sorted(Path(f).name for f in dashboards["files"]) == sorted(
        p.name for p in (DEPLOY.parent / "dashboards").glob("*.json"))


def test_yamllint_finds_nothing():
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    problems = [f"{p.relative_to(DEPLOY)}:{problem.line}: {problem.message}"
                for p in YAML_FILES for problem in linter.run(p.read_text("utf-8"), config)]
    assert problems == []


def test_every_configuration_file_parses():
    parsed = 0
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            documents(path)
        elif path.suffix == ".xml":
            ElementTree.parse(path)
        elif path.suffix == ".json":
            json.loads(path.read_text("utf-8"))
        elif path.suffix == ".env":
            for line in path.read_text("utf-8").splitlines():
                assert not line.strip() or line.startswith("#") or re.fullmatch(r"[A-Z0-9_]+=.*", line), line
        else:
            continue
        parsed += 1
    assert parsed >= 14


def images() -> list[str]:
    found = [d.get("image") for d in documents(COMPOSE)[0]["services"].values()]
    found += re.findall(r"image: (\S+)", (DEPLOY / "compose" / "compose.yaml").read_text())
    found += re.findall(r"image: (\S+)", "".join(p.read_text() for p in MANIFESTS))
    found += re.findall(r"^FROM (\S+)", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    return sorted({i for i in found if i})


def test_every_image_is_pinned_to_a_version():
    assert len(images()) >= 8
    for image in images():
        name, _, tag = image.rpartition(":")
        assert name and re.search(r"\d", tag) and tag != "latest", image


def test_every_fengqiao_variable_is_a_setting():
    """A misspelt variable would be ignored silently by pydantic-settings: catch it here."""
    text = COMPOSE.read_text() + "".join(p.read_text() for p in MANIFESTS)
    used = set(re.findall(r"\bFENGQIAO_[A-Z_]+", text))
    known = {f"FENGQIAO_{name.upper()}" for name in Settings.model_fields}
    assert used and used <= known, used - known


def test_compose_mounts_configuration_that_exists():
    compose = documents(COMPOSE)[0]
    for name, config in compose["configs"].items():
        assert (COMPOSE.parent / config["file"]).is_file(), name
    services = compose["services"]
    for role in ("worker", "gateway"):
        assert services[role]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="make test installs Debian's prometheus")
def test_prometheus_accepts_its_configuration():
    done = subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_production_runs_the_kafka_the_tests_prove_things_on():
    """One pin: the broker the suite fetches (deploy/kafka/pom.xml) is the image deployed."""
    pinned = kafka_version()
    kafkas = {i for i in images() if i.startswith("apache/kafka:")}
    assert kafkas == {f"apache/kafka:{pinned}"}
