"""Security properties of infra/, checked on the parsed Bicep.

The templates are parsed with pycep (the Bicep parser checkov itself uses), so
every check works on structure, not on text. Each check is a function that
takes an :class:`Infra` and raises ``AssertionError`` with a reason; the tests
run them on infra/ and on deliberately broken copies of it.

pycep gives identifiers (parameter, variable and resource names) and string
literals the same Python type, so checks that expect a literal compare with
the literal's value and checks that expect a reference compare with the
reference's name; a value that is neither fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pycep import BicepParser

ENV_VARS = (
    "DATAPROTECTION_BLOB_URL",
    "DATAPROTECTION_KEYVAULT_KEY_ID",
    "DATAPROTECTION_APP_NAME",
)
# Built-in role definitions (ids are the same in every tenant).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"

ROLES_MODULE = "modules/roles.bicep"
APP_MODULE = "modules/appservice.bicep"
STORAGE_MODULE = "modules/storage.bicep"
KEYVAULT_MODULE = "modules/keyvault.bicep"

STORAGE = "Microsoft.Storage/storageAccounts"
BLOB_SERVICE = "Microsoft.Storage/storageAccounts/blobServices"
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
VAULT = "Microsoft.KeyVault/vaults"
KEY = "Microsoft.KeyVault/vaults/keys"
SITE = "Microsoft.Web/sites"
SLOT = "Microsoft.Web/sites/slots"
SITE_CONFIG = "Microsoft.Web/sites/config"
SLOT_CONFIG = "Microsoft.Web/sites/slots/config"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"


def accessor(*parts: str) -> dict[str, Any]:
    """pycep's form of ``a.b.c``."""
    node: Any = parts[-1]
    for part in reversed(parts[:-1]):
        node = {"operator": {"type": "property_accessor", "operands": {"operand_1": part, "operand_2": node}}}
    return node


@dataclass
class Resource:
    file: str
    symbol: str
    type: str
    existing: bool
    config: dict[str, Any]
    condition: Any = None

    @property
    def properties(self) -> dict[str, Any]:
        props = self.config.get("properties")
        assert isinstance(props, dict), f"{self.file}: {self.symbol} has no properties block"
        return props


_PARSER: BicepParser | None = None


def _parse(text: str) -> dict[str, Any]:
    global _PARSER
    if _PARSER is None:  # building the grammar is the slow part
        _PARSER = BicepParser()
    return _PARSER.parse(text=text)


class Infra:
    """All Bicep files under one infra/ folder, parsed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.files: dict[str, dict[str, Any]] = {}
        for path in sorted(self.root.glob("*.bicep")) + sorted((self.root / "modules").glob("*.bicep")):
            rel = path.relative_to(self.root).as_posix()
            try:
                self.files[rel] = _parse(path.read_text(encoding="utf-8"))
            except Exception as err:  # pycep raises lark errors
                raise AssertionError(f"{rel} does not parse with pycep (checkov would skip it): {err}") from err
        assert "main.bicep" in self.files, "infra/main.bicep is missing"

    # --- lookups -------------------------------------------------------
    def resources(self, type_: str | None = None, *, include_existing: bool = False) -> list[Resource]:
        found = []
        for rel, tree in self.files.items():
            for symbol, res in (tree.get("resources") or {}).items():
                config = res["config"]
                condition = None
                if "condition" in config and "config" in config:  # `= if (...) {...}`
                    condition, config = config["condition"], config["config"]
                r = Resource(rel, symbol, res["type"], bool(res.get("existing")), config, condition)
                if (type_ is None or r.type == type_) and (include_existing or not r.existing):
                    found.append(r)
        return found

    def one(self, type_: str, file: str | None = None) -> Resource:
        found = [r for r in self.resources(type_) if file is None or r.file == file]
        assert len(found) == 1, f"expected exactly one deployed {type_}, found {[(r.file, r.symbol) for r in found]}"
        return found[0]

    def symbol(self, file: str, name: str) -> Resource:
        res = self.files[file].get("resources", {}).get(name)
        assert res is not None, f"{file}: no resource named {name}"
        return Resource(file, name, res["type"], bool(res.get("existing")), res["config"])

    def modules(self, file: str = "main.bicep") -> dict[str, dict[str, Any]]:
        """Module calls of a file: symbol -> {path, params, condition}."""
        out = {}
        for symbol, mod in (self.files[file].get("modules") or {}).items():
            config = mod["config"]
            condition = None
            if "condition" in config and "config" in config:
                condition, config = config["condition"], config["config"]
            out[symbol] = {"path": mod["detail"]["path"], "params": config.get("params", {}), "condition": condition}
        return out

    def module_call(self, path: str) -> tuple[str, dict[str, Any]]:
        calls = [(s, m) for s, m in self.modules().items() if m["path"] == path]
        assert len(calls) == 1, f"main.bicep must call {path} exactly once, found {len(calls)}"
        return calls[0]

    def param_default(self, file: str, name: str) -> Any:
        param = (self.files[file].get("parameters") or {}).get(name)
        assert param is not None, f"{file}: no parameter {name}"
        return param.get("default")

    def param_allowed(self, file: str, name: str) -> list[Any] | None:
        param = self.files[file]["parameters"][name]
        for dec in param.get("decorators", []):
            if dec.get("type") == "allowed":
                return list(dec["argument"])
        return None

    def variable(self, file: str, name: str) -> Any:
        var = (self.files[file].get("variables") or {}).get(name)
        assert var is not None, f"{file}: no variable {name}"
        return var["value"]

    def effective(self, file: str, value: Any, module_arg: Any = None) -> Any:
        """Value of a parameter or variable reference (module argument if a
        literal one is given, else the parameter's default); literals as is."""
        tree = self.files[file]
        if isinstance(value, str):
            if value in (tree.get("parameters") or {}):
                if module_arg is not None and not isinstance(module_arg, dict):
                    return module_arg
                return tree["parameters"][value].get("default")
            if value in (tree.get("variables") or {}):
                return tree["variables"][value]["value"]
        return value

    def output(self, file: str, name: str) -> Any:
        out = (self.files[file].get("outputs") or {}).get(name)
        assert out is not None, f"{file}: no output {name}"
        return out["value"]


def _role_id(role_definition: Any, tree_vars: dict[str, Any]) -> str:
    """Role GUID of a roleDefinitionId written as subscriptionResourceId(...)."""
    fn = role_definition.get("function", {}) if isinstance(role_definition, dict) else {}
    assert fn.get("type") == "subscription_resource_id", "roleDefinitionId must be subscriptionResourceId(...)"
    params = fn["parameters"]
    assert params["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    name = params["resource_name_1"]
    if name in tree_vars:
        name = tree_vars[name]["value"]
    return str(name).lower()


# --- the checks ---------------------------------------------------------------


def check_every_file_parses(infra: Infra) -> None:
    expected = {"main.bicep", APP_MODULE, STORAGE_MODULE, KEYVAULT_MODULE, ROLES_MODULE}
    missing = expected - set(infra.files)
    assert not missing, f"missing templates: {sorted(missing)}"


def check_storage_account(infra: Infra) -> None:
    sa = infra.one(STORAGE)
    p = sa.properties
    assert p.get("supportsHttpsTrafficOnly") is True, "storage: supportsHttpsTrafficOnly must be true"
    assert p.get("minimumTlsVersion") == "TLS1_2", "storage: minimumTlsVersion must be TLS1_2"
    assert p.get("allowBlobPublicAccess") is False, "storage: allowBlobPublicAccess must be false"
    assert p.get("allowSharedKeyAccess") is False, "storage: allowSharedKeyAccess must be false (no keys, no SAS)"
    acls = p.get("networkAcls")
    assert isinstance(acls, dict) and acls.get("defaultAction") == "Deny", "storage: firewall defaultAction must be Deny"
    assert p.get("publicNetworkAccess") in ("Enabled", "Disabled"), "storage: publicNetworkAccess must be explicit"


def check_storage_versioning_and_soft_delete(infra: Infra) -> None:
    svc = infra.one(BLOB_SERVICE)
    assert svc.config.get("name") == "default", "blobServices must be 'default'"
    p = svc.properties
    assert p.get("isVersioningEnabled") is True, "blob versioning must be on"
    for policy in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"):
        pol = p.get(policy)
        assert isinstance(pol, dict) and pol.get("enabled") is True, f"{policy} must be enabled"
        days = infra.effective(svc.file, pol.get("days"))
        assert isinstance(days, int) and days >= 7, f"{policy}.days must be at least 7, got {days!r}"
    assert p["deleteRetentionPolicy"].get("allowPermanentDelete") in (None, False), "permanent delete must stay off"


def check_private_ring_container(infra: Infra) -> None:
    container = infra.one(CONTAINER)
    assert container.properties.get("publicAccess") == "None", "the ring container must have publicAccess 'None'"
    name = infra.effective(container.file, container.config.get("name"))
    assert name, "container name must resolve"
    _, call = infra.module_call(STORAGE_MODULE)
    main_value = infra.effective("main.bicep", call["params"].get("containerName"))
    assert main_value == "dataprotection", f"main.bicep should deploy the 'dataprotection' container, got {main_value!r}"


def check_storage_account_name(infra: Infra) -> None:
    _, call = infra.module_call(STORAGE_MODULE)
    name = call["params"].get("storageAccountName")
    assert isinstance(name, str), "storageAccountName must be an interpolated string"
    m = re.fullmatch(r"([a-z0-9]*)\$\{resourceToken\}", name)
    assert m, f"storage account name must be '<prefix>${{resourceToken}}', got {name!r}"
    token = infra.variable("main.bicep", "resourceToken")
    assert token.get("function", {}).get("type") == "to_lower", "resourceToken must be toLower(uniqueString(...))"
    assert token["function"]["parameters"]["string_to_change"]["function"]["type"] == "unique_string"
    assert 3 <= len(m.group(1)) + 13 <= 24, "prefix + 13-character uniqueString() must fit 3..24"


def check_key_vault(infra: Infra) -> None:
    kv = infra.one(VAULT)
    p = kv.properties
    assert p.get("enableRbacAuthorization") is True, "Key Vault: enableRbacAuthorization must be true"
    assert p.get("enableSoftDelete") is True, "Key Vault: enableSoftDelete must be true"
    assert p.get("enablePurgeProtection") is True, "Key Vault: enablePurgeProtection must be true"
    assert not p.get("accessPolicies"), "Key Vault: no access policies (RBAC only)"
    acls = p.get("networkAcls")
    assert isinstance(acls, dict) and acls.get("defaultAction") == "Deny", "Key Vault: firewall defaultAction must be Deny"


def check_key_wrap_only(infra: Infra) -> None:
    key = infra.one(KEY)
    p = key.properties
    assert p.get("kty") in ("RSA", "RSA-HSM"), f"key type must be RSA or RSA-HSM, got {p.get('kty')!r}"
    ops = p.get("keyOps")
    assert isinstance(ops, list) and sorted(ops) == ["unwrapKey", "wrapKey"], f"keyOps must be exactly wrapKey+unwrapKey, got {ops!r}"
    size = p.get("keySize")
    default = infra.effective(key.file, size)
    assert default in (2048, 3072), f"key size must default to 2048 or 3072, got {default!r}"
    if isinstance(size, str):
        allowed = infra.param_allowed(key.file, size)
        assert allowed and set(allowed) <= {2048, 3072}, f"keySize parameter must only allow 2048/3072, got {allowed!r}"
    _, call = infra.module_call(KEYVAULT_MODULE)
    main_size = call["params"].get("keySize")
    if isinstance(main_size, str):
        assert infra.effective("main.bicep", main_size) in (2048, 3072)
        allowed = infra.param_allowed("main.bicep", main_size)
        assert allowed and set(allowed) <= {2048, 3072}, "main.bicep keySize must only allow 2048/3072"


def _site_and_slot(infra: Infra) -> tuple[Resource, Resource]:
    site = infra.one(SITE)
    slot = infra.one(SLOT)
    assert slot.config.get("parent") == site.symbol, "the slot must be a child of the web app"
    return site, slot


def check_app_service_hardening(infra: Infra) -> None:
    plan = infra.one("Microsoft.Web/serverfarms")
    assert plan.properties.get("reserved") is True, "the plan must be Linux (reserved: true)"
    site, slot = _site_and_slot(infra)
    for res in (site, slot):
        who = f"{res.type} {res.symbol}"
        assert res.config.get("identity", {}).get("type") == "SystemAssigned", f"{who}: system-assigned identity required"
        p = res.properties
        assert p.get("httpsOnly") is True, f"{who}: httpsOnly must be true"
        cfg = p.get("siteConfig")
        assert isinstance(cfg, dict), f"{who}: siteConfig required"
        assert cfg.get("minTlsVersion") == "1.2", f"{who}: minTlsVersion must be 1.2"
        assert cfg.get("ftpsState") == "Disabled", f"{who}: ftpsState must be Disabled"
        assert cfg.get("remoteDebuggingEnabled") is False, f"{who}: remote debugging must be off"
    name = infra.effective(slot.file, slot.config.get("name"))
    _, call = infra.module_call(APP_MODULE)
    slot_name = infra.effective("main.bicep", call["params"].get("stagingSlotName"))
    assert slot_name == "staging" or name == "staging", "the slot must be named 'staging'"


def check_slot_settings_shared(infra: Infra) -> None:
    site, slot = _site_and_slot(infra)
    site_cfg = site.properties["siteConfig"]
    slot_cfg = slot.properties["siteConfig"]
    assert site_cfg == slot_cfg, "production and staging siteConfig must be identical"
    settings = infra.effective(site.file, site_cfg.get("appSettings"))
    assert isinstance(settings, list), "appSettings must be a list (or a variable holding one)"
    names = [s.get("name") for s in settings]
    assert sorted(names) == sorted(ENV_VARS), f"app settings must be exactly {ENV_VARS}, got {names}"
    values = {s["name"]: s["value"] for s in settings}
    assert values["DATAPROTECTION_BLOB_URL"] == "dataProtectionBlobUrl"
    assert values["DATAPROTECTION_KEYVAULT_KEY_ID"] == "dataProtectionKeyVaultKeyId"
    assert values["DATAPROTECTION_APP_NAME"] == "dataProtectionAppName"
    # No other resource may set app settings for only one slot.
    for res in infra.resources(SITE_CONFIG) + infra.resources(SLOT_CONFIG):
        assert res.config.get("name") != "appsettings", f"{res.file}: {res.symbol} overrides app settings per slot"
    # Nothing is sticky.
    for res in infra.resources(SITE_CONFIG):
        if res.config.get("name") == "slotConfigNames":
            sticky = res.properties.get("appSettingNames") or []
            assert isinstance(sticky, list), "slotConfigNames.appSettingNames must be a literal list"
            bad = sorted(set(sticky) & set(ENV_VARS))
            assert not bad, f"these settings must not be slot-sticky: {bad}"


def check_main_wiring(infra: Infra) -> None:
    """main.bicep passes the one blob URL, the versionless key URL and one app name to both slots."""
    _, call = infra.module_call(APP_MODULE)
    params = call["params"]
    assert params.get("dataProtectionBlobUrl") == accessor("storage", "outputs", "blobUrl")
    assert params.get("dataProtectionKeyVaultKeyId") == accessor("keyVault", "outputs", "keyUri")
    assert params.get("dataProtectionAppName") == "dataProtectionAppName"
    assert "dataProtectionAppName" in infra.files["main.bicep"]["parameters"], "the app name must be a parameter"
    key = infra.one(KEY)
    assert infra.output(KEYVAULT_MODULE, "keyUri") == accessor(key.symbol, "properties", "keyUri"), (
        "the key URL must be versionless (properties.keyUri, not keyUriWithVersion)"
    )
    blob_url = infra.output(STORAGE_MODULE, "blobUrl")
    assert isinstance(blob_url, str) and blob_url.startswith("${storage.properties.primaryEndpoints.blob}"), (
        "the blob URL must be built on the account's (https) blob endpoint"
    )
    assert "?" not in blob_url and "sas" not in blob_url.lower(), "the blob URL must carry no SAS"


def check_outputs(infra: Infra) -> None:
    outputs = infra.files["main.bicep"].get("outputs") or {}
    for name in ENV_VARS:
        assert name in outputs, f"main.bicep must output {name}"
    assert outputs["DATAPROTECTION_BLOB_URL"]["value"] == accessor("storage", "outputs", "blobUrl")
    assert outputs["DATAPROTECTION_KEYVAULT_KEY_ID"]["value"] == accessor("keyVault", "outputs", "keyUri")
    assert outputs["DATAPROTECTION_APP_NAME"]["value"] == "dataProtectionAppName"


def check_role_assignments_narrow(infra: Infra) -> None:
    """roles.bicep: blob data on the container, crypto on the key, guid() names, nothing else."""
    tree = infra.files[ROLES_MODULE]
    tvars = tree.get("variables") or {}
    assignments = infra.resources(ROLE_ASSIGNMENT)
    outside = [(r.file, r.symbol) for r in assignments if r.file != ROLES_MODULE]
    assert not outside, f"role assignments belong in {ROLES_MODULE} only, found {outside}"
    by_role: dict[str, Resource] = {}
    for ra in assignments:
        role = _role_id(ra.properties.get("roleDefinitionId"), tvars)
        assert role not in by_role, f"role {role} assigned twice in {ROLES_MODULE}"
        by_role[role] = ra
    assert set(by_role) == {STORAGE_BLOB_DATA_CONTRIBUTOR, KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER}, (
        f"exactly Storage Blob Data Contributor and Key Vault Crypto Service Encryption User, got {sorted(by_role)}"
    )
    expected_scope = {STORAGE_BLOB_DATA_CONTRIBUTOR: CONTAINER, KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: KEY}
    for role, ra in by_role.items():
        scope = ra.config.get("scope")
        assert isinstance(scope, str), f"{ra.symbol}: scope must be a resource symbol"
        scoped = infra.symbol(ROLES_MODULE, scope)
        assert scoped.type == expected_scope[role], f"{ra.symbol}: scope must be the {expected_scope[role]}, is {scoped.type}"
        assert ra.properties.get("principalId") == "principalId", f"{ra.symbol}: principalId must be the module parameter"
        name = ra.config.get("name", {})
        fn = name.get("function", {}) if isinstance(name, dict) else {}
        assert fn.get("type") == "guid", f"{ra.symbol}: name must be guid(...)"
        args = list(fn["parameters"].values())
        assert accessor(scope, "id") in args and "principalId" in args, f"{ra.symbol}: guid() must include the scope id and principalId"
    # The scopes are the deployed container and key, by name.
    container = infra.symbol(ROLES_MODULE, by_role[STORAGE_BLOB_DATA_CONTRIBUTOR].config["scope"])
    assert container.config.get("name") == "containerName"
    key = infra.symbol(ROLES_MODULE, by_role[KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER].config["scope"])
    assert key.config.get("name") == "keyName"


def check_both_identities_get_roles(infra: Infra) -> None:
    site, slot = _site_and_slot(infra)
    assert infra.output(APP_MODULE, "webPrincipalId") == accessor(site.symbol, "identity", "principalId")
    assert infra.output(APP_MODULE, "stagingPrincipalId") == accessor(slot.symbol, "identity", "principalId")
    container = infra.one(CONTAINER)
    key = infra.one(KEY)
    assert infra.output(STORAGE_MODULE, "containerName") == accessor(container.symbol, "name")
    assert infra.output(KEYVAULT_MODULE, "keyName") == accessor(key.symbol, "name")
    app_symbol, _ = infra.module_call(APP_MODULE)
    calls = [m for m in infra.modules().values() if m["path"] == ROLES_MODULE]
    for output in ("webPrincipalId", "stagingPrincipalId"):
        matching = [m for m in calls if m["params"].get("principalId") == accessor(app_symbol, "outputs", output)]
        assert len(matching) == 1, f"exactly one unconditional roles module for {output}, found {len(matching)}"
        call = matching[0]
        assert call["condition"] is None, f"the roles for {output} must not be conditional"
        p = call["params"]
        assert p.get("containerName") == accessor("storage", "outputs", "containerName")
        assert p.get("keyName") == accessor("keyVault", "outputs", "keyName")
        assert p.get("storageAccountName") == accessor("storage", "outputs", "storageAccountName")
        assert p.get("keyVaultName") == accessor("keyVault", "outputs", "keyVaultName")


CHECKS: list[Callable[[Infra], None]] = [
    check_every_file_parses,
    check_storage_account,
    check_storage_versioning_and_soft_delete,
    check_private_ring_container,
    check_storage_account_name,
    check_key_vault,
    check_key_wrap_only,
    check_app_service_hardening,
    check_slot_settings_shared,
    check_main_wiring,
    check_outputs,
    check_role_assignments_narrow,
    check_both_identities_get_roles,
]


def violations(root: Path) -> dict[str, str]:
    """Every failing check on the infra/ folder at root: name -> reason."""
    try:
        infra = Infra(root)
    except AssertionError as err:
        return {"parse": str(err)}
    failed = {}
    for check in CHECKS:
        try:
            check(infra)
        except (AssertionError, KeyError, TypeError, AttributeError) as err:
            failed[check.__name__] = f"{type(err).__name__}: {err}"
    return failed
