"""A broken copy of infra/ fails the property checks AND checkov.

Each case copies infra/ to a temporary folder, breaks one security property
with a one-line edit, and asserts that the named property check fails and
that checkov (with the custom policies in infra/policies) reports the named
failed check. The unmodified copy must pass both, so the cases cannot pass
vacuously.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from checkov_run import run_checkov, run_checkov_per_folder
from infra_properties import violations

IGNORE = shutil.ignore_patterns(".venv", ".pytest_cache", "__pycache__", ".azure")

# (id, file, old, new, property check that must fail, checkov id that must fail)
CASES = [
    ("blob-public-access", "modules/storage.bicep", "allowBlobPublicAccess: false", "allowBlobPublicAccess: true",
     "check_storage_account", "CKV2_DP_1"),
    ("shared-key-access", "modules/storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true",
     "check_storage_account", "CKV2_DP_2"),
    ("no-versioning", "modules/storage.bicep", "isVersioningEnabled: true", "isVersioningEnabled: false",
     "check_storage_versioning_and_soft_delete", "CKV2_DP_3"),
    ("public-container", "modules/storage.bicep", "publicAccess: 'None'", "publicAccess: 'Blob'",
     "check_private_ring_container", "CKV_AZURE_34"),
    ("tls-1-0", "modules/storage.bicep", "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'",
     "check_storage_account", "CKV_AZURE_44"),
    ("no-purge-protection", "modules/keyvault.bicep", "enablePurgeProtection: true", "enablePurgeProtection: false",
     "check_key_vault", "CKV_AZURE_110"),
    ("access-policies", "modules/keyvault.bicep", "enableRbacAuthorization: true", "enableRbacAuthorization: false",
     "check_key_vault", "CKV2_DP_4"),
    ("key-can-decrypt", "modules/keyvault.bicep", "      'unwrapKey'\n", "      'unwrapKey'\n      'decrypt'\n",
     "check_key_wrap_only", "CKV2_DP_5"),
]

# Edits that checkov cannot see (scopes, slot wiring, outputs): only the
# property checks guard them.
PROPERTY_ONLY = [
    ("blob-role-on-account", "modules/roles.bicep", "  scope: container\n", "  scope: storage\n",
     "check_role_assignments_narrow"),
    ("crypto-role-on-vault", "modules/roles.bicep", "  scope: key\n", "  scope: vault\n",
     "check_role_assignments_narrow"),
    ("staging-without-roles", "main.bicep", "principalId: app.outputs.stagingPrincipalId",
     "principalId: app.outputs.webPrincipalId", "check_both_identities_get_roles"),
    ("sticky-app-name", "modules/appservice.bicep", "appSettingNames: []", "appSettingNames: [\n      'DATAPROTECTION_APP_NAME'\n    ]",
     "check_slot_settings_shared"),
    ("versioned-key-url", "main.bicep", "dataProtectionKeyVaultKeyId: keyVault.outputs.keyUri\n",
     "dataProtectionKeyVaultKeyId: keyVault.outputs.keyUriWithVersion\n", "check_main_wiring"),
    ("renamed-output", "main.bicep", "output DATAPROTECTION_APP_NAME string", "output DataProtectionAppName string",
     "check_outputs"),
]


def make_copy(infra_root: Path, dest: Path, file: str | None = None, old: str = "", new: str = "") -> Path:
    shutil.copytree(infra_root, dest, ignore=IGNORE)
    if file is not None:
        path = dest / file
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{file}: the edit target must occur exactly once: {old!r}"
        path.write_text(text.replace(old, new), encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def checkov_results(infra_root, tmp_path_factory):
    """The unmodified copy and every broken copy, side by side, scanned by ONE
    checkov run (a run costs several seconds)."""
    parent = tmp_path_factory.mktemp("copies")
    make_copy(infra_root, parent / "unmodified")
    for case_id, file, old, new, _, _ in CASES:
        make_copy(infra_root, parent / case_id, file, old, new)
    return parent, run_checkov_per_folder(parent)


def test_unmodified_copy_passes_both(checkov_results):
    parent, results = checkov_results
    assert violations(parent / "unmodified") == {}
    result = results["unmodified"]
    assert result["failed"] == 0 and result["parsing_errors"] == 0, result
    assert result["passed"] > 0, result


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_copy_fails_properties_and_checkov(case, checkov_results):
    case_id, _, _, _, check_name, checkov_id = case
    parent, results = checkov_results
    failed = violations(parent / case_id)
    assert check_name in failed, f"property check {check_name} did not catch the edit; failures: {failed}"
    result = results[case_id]
    assert checkov_id in result["failed_ids"], result


def test_checkov_exits_non_zero_on_a_broken_copy(infra_root, tmp_path):
    _, file, old, new, _, checkov_id = CASES[0]
    result = run_checkov(make_copy(infra_root, tmp_path / "infra", file, old, new))
    assert result["returncode"] != 0 and checkov_id in result["failed_ids"], result


@pytest.mark.parametrize("case", PROPERTY_ONLY, ids=[c[0] for c in PROPERTY_ONLY])
def test_broken_copy_fails_properties(case, infra_root, tmp_path):
    _, file, old, new, check_name = case
    dest = make_copy(infra_root, tmp_path / "infra", file, old, new)
    failed = violations(dest)
    assert check_name in failed, f"property check {check_name} did not catch the edit; failures: {failed}"


def test_unparseable_template_fails_both(infra_root, tmp_path):
    """pycep 0.5.1 (and so checkov) rejects five comment lines in a row at the
    top level of a resource body (valid Bicep); checkov then leaves the file
    out of the scan. The property checks must fail, and checkov must report
    the parse error that scripts/check-infra.sh refuses."""
    comments = "".join(f"  // note {i}\n" for i in range(5))
    dest = make_copy(infra_root, tmp_path / "infra", "modules/storage.bicep",
                     "  kind: 'StorageV2'\n", comments + "  kind: 'StorageV2'\n")
    assert "parse" in violations(dest)
    result = run_checkov(dest)
    assert result["parsing_errors"] > 0, result
