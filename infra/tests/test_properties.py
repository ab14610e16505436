"""The security properties of infra/ hold (see infra_properties.py)."""

from __future__ import annotations

import pytest

from infra_properties import CHECKS, Infra


@pytest.fixture(scope="module")
def infra(infra_root):
    return Infra(infra_root)


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
def test_property(check, infra):
    check(infra)


def test_skips_are_few_and_explained(infra_root):
    """Every inline checkov skip names one check and gives a reason."""
    import re

    skips = []
    for path in sorted(infra_root.rglob("*.bicep")):
        if ".venv" in path.parts:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip=" in line:
                m = re.search(r"//\s*checkov:skip=(CKV2?_[A-Z]+_\d+):\s*(\S.{15,})$", line)
                assert m, f"{path.name}: skip without one id and a reason: {line.strip()}"
                skips.append(m.group(1))
    assert len(skips) <= 14, f"{len(skips)} skips; keep them few"


def test_parameters_file_matches_main(infra, infra_root):
    """main.parameters.json names only real parameters and gives every
    parameter without a default (azd fills in the ${...} placeholders)."""
    import json

    params = json.loads((infra_root / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = infra.files["main.bicep"]["parameters"]
    unknown = sorted(set(params) - set(declared))
    assert not unknown, f"main.parameters.json sets unknown parameters: {unknown}"
    required = sorted(name for name, p in declared.items() if "default" not in p)
    missing = [name for name in required if name not in params]
    assert not missing, f"main.parameters.json misses required parameters: {missing}"


def test_azure_yaml_points_at_main(infra_root):
    import yaml

    doc = yaml.safe_load((infra_root / "azure.yaml").read_text(encoding="utf-8"))
    assert doc["infra"]["provider"] == "bicep"
    assert (infra_root / doc["infra"]["path"] / f"{doc['infra']['module']}.bicep").is_file()
