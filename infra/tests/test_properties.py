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


def _param_default(infra_root, file, name):
    import re

    text = (infra_root / file).read_text(encoding="utf-8")
    m = re.search(rf"^param {name} string = '([^']*)'$", text, re.M)
    assert m, f"{file}: no string default for {name}"
    return m.group(1)


def test_azure_yaml_deploys_the_rust_sample(infra_root):
    """azd up builds and deploys samples/app-service-slots to the site tagged web."""
    import os

    import yaml

    doc = yaml.safe_load((infra_root / "azure.yaml").read_text(encoding="utf-8"))
    web = doc["services"]["web"]
    assert web["host"] == "appservice"
    project = (infra_root / web["project"]).resolve()
    cargo = (project / "Cargo.toml").read_text(encoding="utf-8")
    assert 'name = "app-service-slots"' in cargo
    hook = web["hooks"]["prepackage"]["posix"]["run"]
    script = (project / hook).resolve()
    assert script.is_file() and os.access(script, os.X_OK), f"{script} must be an executable file"
    body = script.read_text(encoding="utf-8")
    assert "cargo build --release --locked -p app-service-slots" in body
    binary = f"{web['dist']}/app-service-slots"
    assert binary in body, f"the hook must produce {binary}"
    # The startup command runs that binary from the deployed package.
    for file in ("main.bicep", "modules/appservice.bicep"):
        command = _param_default(infra_root, file, "appCommandLine")
        assert command == "/home/site/wwwroot/app-service-slots", f"{file}: {command}"
    main = (infra_root / "main.bicep").read_text(encoding="utf-8")
    assert "'azd-service-name': 'web'" in main


def test_runtime_stack_and_health_check_fit_the_sample(infra_root):
    """Not an ASP.NET Core stack; the health check path is one the sample answers."""
    sample = (infra_root / ".." / "samples" / "app-service-slots" / "src" / "main.rs").read_text(encoding="utf-8")
    for file in ("main.bicep", "modules/appservice.bicep"):
        stack = _param_default(infra_root, file, "linuxFxVersion")
        assert not stack.upper().startswith("DOTNETCORE"), f"{file}: {stack}"
        path = _param_default(infra_root, file, "healthCheckPath")
        assert path == "/healthz", f"{file}: {path}"
        assert f'.route("{path}"' in sample, f"the sample has no route {path}"
