"""The deployment, checked without Azure: infra/**/*.bicep, main.parameters.json, azure.yaml and
docs/deploy.md.

Every Bicep file is parsed with tree-sitter-bicep (no Bicep compiler is needed), so a syntax
error fails here with its file, line and text. On top of the syntax tree the tests check what
the code relies on: every setting of shared/settings.py reaches the Function App (or is
documented as optional), defaults agree with settings.py, storage is reached with the managed
identity only (no account key, shared key access off), and the Function App is the Flex
Consumption, Python 3.11, HTTPS-only app that azd deploys as the service `api`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_bicep

from shared.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP = INFRA / "bicep"
MAIN = BICEP / "main.bicep"
FUNCTION_APP = BICEP / "modules" / "functionapp.bicep"
PARAMETERS = BICEP / "main.parameters.json"
AZURE_YAML = ROOT / "azure.yaml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# Settings the platform reads, not the code: telemetry and the identity-based host storage.
PLATFORM_SETTINGS = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                     "PYTHON_THREADPOOL_THREAD_COUNT"}
HOST_STORAGE_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
}

# Built-in role definition ids (the same in every tenant).
ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


# ---------------------------------------------------------------------------------------------
# Syntax
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntaxProblem:
    path: str
    line: int  # 1-based
    column: int  # 1-based
    kind: str  # "syntax error" or "missing <token>"
    text: str  # the source line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.kind}: {self.text}"


def syntax_problems(source: bytes, path: str) -> list[SyntaxProblem]:
    """Every ERROR and MISSING node of the parse, outermost first, in source order."""
    lines = source.decode("utf-8", errors="replace").splitlines() or [""]
    problems: list[SyntaxProblem] = []

    def visit(node: tree_sitter.Node) -> None:
        if node.is_error or node.is_missing:
            row, col = node.start_point
            if node.is_missing and node.parent is not None:
                row, col = node.parent.start_point  # the construct the token would have closed
            kind = f"missing {node.type!r}" if node.is_missing else "syntax error"
            text = lines[min(row, len(lines) - 1)].strip()
            problems.append(SyntaxProblem(path, row + 1, col + 1, kind, text))
            if node.is_error:
                return  # one report per broken region
        if node.has_error:
            for child in node.children:
                visit(child)

    visit(_PARSER.parse(source).root_node)
    return problems


def syntax_problems_in(paths: list[Path]) -> list[SyntaxProblem]:
    found: list[SyntaxProblem] = []
    for path in paths:
        found.extend(syntax_problems(path.read_bytes(), _shown(path)))
    return found


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


# ---------------------------------------------------------------------------------------------
# Reading the syntax tree
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expr:
    """A Bicep expression that is not a literal (a reference, a call, an interpolation)."""
    text: str


def _named(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    return [c for c in node.named_children if c.type != "comment"]


def _string_value(node: tree_sitter.Node) -> str | Expr:
    escapes = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}
    out: list[str] = []
    for child in _named(node):
        if child.type == "interpolation":
            return Expr(node.text.decode())
        text = child.text.decode()
        out.append(escapes.get(text, text) if child.type == "escape_sequence" else text)
    return "".join(out)


def literal(node: tree_sitter.Node):
    """The Python value of a literal node (dict, list, str, int, bool, None), else an Expr."""
    kind = node.type
    if kind == "string":
        return _string_value(node)
    if kind == "number":
        return int(node.text.decode())
    if kind == "boolean":
        return node.text.decode() == "true"
    if kind == "null":
        return None
    if kind == "array":
        return [literal(c) for c in _named(node)]
    if kind == "object":
        result = {}
        for prop in _named(node):
            if prop.type == "object_property" and len(_named(prop)) == 2:
                key, value = _named(prop)
                result[property_key(key)] = literal(value)
        return result
    return Expr(node.text.decode())


def property_key(node: tree_sitter.Node) -> str:
    value = literal(node) if node.type == "string" else node.text.decode()
    return value.text if isinstance(value, Expr) else value


def walk(node: tree_sitter.Node):
    yield node
    for child in node.children:
        yield from walk(child)


@dataclass(frozen=True)
class Resource:
    symbol: str
    type: str
    existing: bool
    body: tree_sitter.Node

    @property
    def value(self) -> dict:
        return literal(self.body)


class BicepFile:
    def __init__(self, path: Path):
        self.path = path
        self.source = path.read_bytes()
        self.root = _PARSER.parse(self.source).root_node

    def _declarations(self, kind: str) -> dict[str, tree_sitter.Node | None]:
        found = {}
        for node in _named(self.root):
            if node.type == kind:
                name, *rest = _named(node)
                rest = [part for part in rest if part.type != "type"]
                found[name.text.decode()] = rest[-1] if rest else None
        return found

    @property
    def params(self) -> dict[str, tree_sitter.Node | None]:
        """param name -> default value node (None when the parameter has no default)."""
        return self._declarations("parameter_declaration")

    @property
    def variables(self) -> dict[str, tree_sitter.Node]:
        return self._declarations("variable_declaration")

    def resources(self) -> list[Resource]:
        found = []
        for node in walk(self.root):
            if node.type != "resource_declaration":
                continue
            parts = _named(node)
            symbol, type_node = parts[0], parts[1]
            body = parts[-1]
            if body.type == "for_statement":
                body = body.child_by_field_name("body") or _named(body)[-1]
            existing = any(c.type == "existing" for c in node.children)
            found.append(Resource(symbol.text.decode(), literal(type_node), existing, body))
        return found

    def resolve(self, node: tree_sitter.Node):
        """A value, following a reference to a param default or a var, and string(x)."""
        if node.type == "identifier":
            name = node.text.decode()
            target = self.params.get(name) or self.variables.get(name)
            return self.resolve(target) if target is not None else Expr(name)
        if node.type == "call_expression":
            function = node.child_by_field_name("function")
            arguments = _named(node.child_by_field_name("arguments") or node)
            if function is not None and function.text == b"string" and len(arguments) == 1:
                value = self.resolve(arguments[0])
                return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        return literal(node)


def bicep(path: Path) -> BicepFile:
    return BicepFile(path)


def app_settings() -> dict[str, tuple[BicepFile, tree_sitter.Node]]:
    """Every app setting the Bicep sets: name -> (file, value node).

    App settings are the keys of any object bound to `appSettings` (a var or a module parameter),
    and of the objects inside the `properties` of a `config` resource named 'appsettings'.
    """
    settings: dict[str, tuple[BicepFile, tree_sitter.Node]] = {}

    def take(file: BicepFile, obj: tree_sitter.Node) -> None:
        for prop in _named(obj):
            if prop.type == "object_property" and len(_named(prop)) == 2:
                key, value = _named(prop)
                settings[property_key(key)] = (file, value)

    for path in bicep_files():
        file = bicep(path)
        for node in walk(file.root):
            if node.type in ("variable_declaration", "object_property"):
                parts = _named(node)
                if len(parts) == 2 and parts[0].text == b"appSettings" and parts[1].type == "object":
                    take(file, parts[1])
        for resource in file.resources():
            props = {property_key(_named(p)[0]): _named(p)[1]
                     for p in _named(resource.body)
                     if p.type == "object_property" and len(_named(p)) == 2}
            name = props.get("name")
            if name is not None and literal(name) == "appsettings" and "properties" in props:
                for node in walk(props["properties"]):
                    if node.type == "object":
                        take(file, node)
    return settings


def documented_settings() -> dict[str, dict[str, str]]:
    """The settings table of docs/deploy.md: name -> {column header (lowercase): cell}."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in DEPLOY_DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue
        name = cells[0].strip("`")
        if header and header[0] == "setting":
            rows[name] = dict(zip(header, cells))
    return rows


def documented_default(cell: str) -> str | None:
    cell = cell.strip()
    if cell == "(none)":
        return None
    if cell == "(empty)":
        return ""
    assert cell.startswith("`") and cell.endswith("`"), f"default {cell!r} must be `code`, (none) or (empty)"
    return cell[1:-1]


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

def test_there_are_bicep_files_to_check():
    names = {p.relative_to(BICEP).as_posix() for p in bicep_files()}
    assert "main.bicep" in names
    assert any(n.startswith("modules/") for n in names)


def test_every_bicep_file_parses_without_syntax_errors():
    problems = syntax_problems_in(bicep_files())
    assert not problems, "Bicep syntax problems:\n" + "\n".join(map(str, problems))


def test_a_broken_bicep_file_is_reported_with_its_file_line_and_text(tmp_path):
    broken = tmp_path / "broken.bicep"
    broken.write_text(
        "param brandName string = 'Your MSP'\n"
        "\n"
        "resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {\n"
        "  name: 'plan'\n"
        "  sku: {\n"
        "    name: \n"
        "  }\n"
        "}\n",
        encoding="utf-8",
    )
    problems = syntax_problems_in([broken])
    assert problems, "a value-less property must be reported"
    first = problems[0]
    assert first.path == str(broken)
    assert first.line in (6, 7)
    assert str(first).startswith(f"{broken}:{first.line}:")
    assert first.text in ("name:", "}")


def test_an_unterminated_string_is_reported_as_a_missing_quote():
    problems = syntax_problems(b"var mailbox = 'invoices@example.com\n", "snippet.bicep")
    assert [p.kind for p in problems] == ["missing \"'\""]
    assert str(problems[0]) == "snippet.bicep:1:15: missing \"'\": var mailbox = 'invoices@example.com"


def test_a_stray_token_is_reported_as_a_syntax_error():
    problems = syntax_problems(b"param days int = 30 30\n", "snippet.bicep")
    assert problems and problems[0].kind == "syntax error" and problems[0].line == 1


def test_every_declared_setting_is_an_app_setting_or_documented_as_optional():
    set_in_bicep = set(app_settings())
    documented = documented_settings()
    # Optional *and* left out by the template: the doc row says "yes" and "not set".
    optional = {name for name, row in documented.items()
                if row.get("optional", "").lower().startswith("yes")
                and row.get("deployment", "").lower().startswith("not set")}

    def is_set(name: str) -> bool:
        # A connection named X is also set by identity-based X__* settings (AzureWebJobsStorage).
        return name in set_in_bicep or any(key.startswith(name + "__") for key in set_in_bicep)

    neither = [name for name in SETTINGS if not is_set(name) and name not in optional]
    assert not neither, f"settings neither set in infra/bicep nor documented as optional in docs/deploy.md: {neither}"


def test_every_app_setting_in_the_bicep_is_one_the_code_or_the_platform_reads():
    unknown = sorted(set(app_settings()) - set(SETTINGS) - PLATFORM_SETTINGS - HOST_STORAGE_SETTINGS)
    assert not unknown, f"app settings not declared in shared/settings.py: {unknown}"


def test_the_host_reaches_storage_with_the_identity_only():
    settings = app_settings()
    assert HOST_STORAGE_SETTINGS <= set(settings)
    assert "AzureWebJobsStorage" not in settings, "no AzureWebJobsStorage connection string in Azure"
    file, credential = settings["AzureWebJobsStorage__credential"]
    assert literal(credential) == "managedidentity"
    file, auth = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert literal(auth) == Expr("'ClientId=${identityClientId};Authorization=AAD'")
    file, client_id = settings["AzureWebJobsStorage__clientId"]
    assert client_id.text == b"identityClientId"


def test_the_graph_settings_sign_in_with_the_federated_identity():
    settings = app_settings()
    main = bicep(MAIN)
    assert main.resolve(settings["GRAPH_AUTH"][1]) == "federated"
    assert settings["MANAGED_IDENTITY_CLIENT_ID"][1].text == b"identity.outputs.clientId"
    assert literal(settings["PUBLIC_BASE_URL"][1]) == Expr("'https://${functionApp.properties.defaultHostName}'")


def test_the_bicep_defaults_agree_with_settings_py():
    disagree = []
    for name, (file, value_node) in app_settings().items():
        default = SETTINGS.get(name, (None, ""))[0]
        value = file.resolve(value_node)
        if default is None or isinstance(value, Expr):
            continue
        if value != default:
            disagree.append(f"{name}: Bicep {value!r}, settings.py {default!r}")
    assert not disagree, "\n".join(disagree)


def test_the_schedules_are_parameters_with_the_defaults_of_settings_py():
    main = bicep(MAIN)
    settings = app_settings()
    for name in ("MONTH_END_SCHEDULE", "SUBSCRIPTION_RENEW_SCHEDULE", "DAILY_SYNC_SCHEDULE"):
        file, value = settings[name]
        assert value.type == "identifier" and value.text.decode() in main.params, f"{name} must be a parameter"
        assert main.resolve(value) == SETTINGS[name][0]


def test_main_parameters_json_uses_azd_substitutions_that_agree_with_settings_py():
    parameters = json.loads(PARAMETERS.read_text(encoding="utf-8"))["parameters"]
    main = bicep(MAIN)
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    substitution = re.compile(r"^\$\{(?P<var>[A-Z_][A-Z0-9_]*)(?:=(?P<default>[^}]*))?\}$")
    for param, entry in parameters.items():
        assert param in main.params, f"main.parameters.json sets {param}, which main.bicep does not declare"
        match = substitution.match(entry["value"])
        assert match, f"{param}: {entry['value']!r} is not an azd ${{VAR}} or ${{VAR=default}} substitution"
        var, default = match["var"], match["default"]
        if default is not None and var in SETTINGS:
            assert default == SETTINGS[var][0], f"{param}: default {default!r} differs from settings.py"
            assert main.resolve(main.params[param]) == default, f"{param}: default differs from main.bicep"
    required = [p for p, default in main.params.items() if default is None]
    assert set(required) <= set(parameters), f"required parameters missing from main.parameters.json: {required}"


def test_no_storage_account_key_or_connection_string_appears():
    forbidden = re.compile(
        r"AccountKey|listKeys\s*\(|listAccountSas|listServiceSas|DefaultEndpointsProtocol"
        r"|SharedAccessSignature|primaryKey|StorageAccountConnectionString",
        re.IGNORECASE,
    )
    found = []
    for path in [*sorted(p for p in INFRA.rglob("*") if p.is_file()), AZURE_YAML]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if forbidden.search(line):
                found.append(f"{_shown(path)}:{number}: {line.strip()}")
    assert not found, "storage keys or connection strings:\n" + "\n".join(found)


def test_the_storage_account_disallows_shared_key_access():
    accounts = [r for p in bicep_files() for r in bicep(p).resources()
                if r.type.startswith("Microsoft.Storage/storageAccounts@") and not r.existing]
    assert len(accounts) == 1
    account = accounts[0].value
    assert account["kind"] == "StorageV2"
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True


def test_the_storage_account_holds_the_tables_queues_and_containers_of_the_app():
    main = bicep(MAIN)
    assert main.resolve(main.variables["tableNames"]) == [
        "tenants", "ledger", "subscriptions", "invoices", "runs", "counters"]
    queues = main.resolve(main.variables["queueNames"])
    assert set(queues) == {"tenant-sync", "tenant-sync-poison", "tenant-close", "tenant-close-poison"}
    assert main.resolve(main.variables["invoiceContainerName"]) == SETTINGS["INVOICE_CONTAINER"][0]
    text = MAIN.read_text(encoding="utf-8")
    assert re.search(r"containerNames:\s*\[\s*invoiceContainerName\s+deploymentContainerName\s*\]", text)


def test_the_function_app_runs_python_3_11_on_flex_consumption_over_https_only():
    resources = bicep(FUNCTION_APP).resources()
    plan = next(r for r in resources if r.type.startswith("Microsoft.Web/serverfarms@")).value
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    site = next(r for r in resources if r.type.startswith("Microsoft.Web/sites@")).value
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"]["instanceMemoryMB"] == Expr("instanceMemoryMB")
    assert "maximumInstanceCount" in config["scaleAndConcurrency"]
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": Expr("identityId")}
    main = bicep(MAIN)
    assert main.resolve(main.params["instanceMemoryMB"]) == 2048


def test_the_identity_holds_its_roles_with_the_built_in_ids_and_a_description():
    roles_file = bicep(BICEP / "modules" / "roles.bicep")
    ids = roles_file.resolve(roles_file.variables["roleIds"])
    assert sorted(ids.values()) == sorted(ROLE_IDS.values())
    text = roles_file.source.decode()
    for name, guid in ROLE_IDS.items():
        assert re.search(rf"{re.escape(name)}\s+{guid}", text), f"{name} {guid} must be named in the header comment"
    assignments = [r for r in roles_file.resources() if r.type.startswith("Microsoft.Authorization/roleAssignments@")]
    assert assignments
    for assignment in assignments:
        properties = assignment.value["properties"]
        assert "description" in properties, f"role assignment {assignment.symbol} has no description"
        assert properties["principalType"] == "ServicePrincipal"
    storage_roles = roles_file.resolve(roles_file.variables["storageRoles"])
    assert {role["roleId"].text for role in storage_roles} == {
        "roleIds.storageBlobDataOwner", "roleIds.storageQueueDataContributor", "roleIds.storageTableDataContributor"}
    assert all(isinstance(role["description"], str) and role["description"] for role in storage_roles)


def test_azd_finds_the_api_service_and_the_bicep_folder():
    text = AZURE_YAML.read_text(encoding="utf-8")
    for line in ("services:", "  api:", "    project: .", "    language: python", "    host: function",
                 "infra:", "  path: infra/bicep"):
        assert line in text.splitlines(), f"azure.yaml lacks {line!r}"
    function_app = FUNCTION_APP.read_text(encoding="utf-8")
    assert "'azd-service-name': serviceName" in function_app
    main = MAIN.read_text(encoding="utf-8")
    assert "serviceName: 'api'" in main
    assert "'azd-env-name': environmentName" in main
    assert "targetScope = 'resourceGroup'" in main


def test_the_outputs_name_what_the_federated_credential_needs():
    outputs = {node.named_children[0].text.decode()
               for node in bicep(MAIN).root.named_children if node.type == "output_declaration"}
    assert {"FUNCTION_APP_NAME", "FUNCTION_APP_DEFAULT_HOST_NAME", "STORAGE_ACCOUNT_NAME",
            "MANAGED_IDENTITY_CLIENT_ID", "MANAGED_IDENTITY_PRINCIPAL_ID",
            "FEDERATED_CREDENTIAL_ISSUER", "FEDERATED_CREDENTIAL_SUBJECT"} <= outputs


def test_the_deploy_doc_lists_every_setting_with_its_default():
    documented = documented_settings()
    missing = [name for name in SETTINGS if name not in documented]
    assert not missing, f"docs/deploy.md settings table lacks {missing}"
    wrong = []
    for name, (default, _meaning) in SETTINGS.items():
        row = documented[name]
        if documented_default(row["default"]) != default:
            wrong.append(f"{name}: documented {row['default']!r}, settings.py {default!r}")
        if row.get("optional", "").lower().split(" ")[0] not in ("yes", "no"):
            wrong.append(f"{name}: optional must say yes or no")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("name", ["GRAPH_CLIENT_SECRET", "GRAPH_CERTIFICATE_PATH", "GRAPH_STATIC_TOKEN"])
def test_the_secret_ish_graph_settings_are_documented_as_optional_and_left_out_of_the_template(name):
    row = documented_settings()[name]
    assert row["optional"].lower().startswith("yes")
    assert row["deployment"].lower().startswith("not set")
    assert name not in app_settings()


def test_the_http_functions_have_explicit_concurrency_and_one_always_ready_instance_by_default():
    site = next(r for r in bicep(FUNCTION_APP).resources() if r.type.startswith("Microsoft.Web/sites@")).value
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == Expr("httpPerInstanceConcurrency")
    assert scale["alwaysReady"] == [{"name": "http", "instanceCount": Expr("httpAlwaysReadyInstances")}]
    main = bicep(MAIN)
    assert main.resolve(main.params["httpPerInstanceConcurrency"]) > 1  # Python's platform default is 1
    assert main.resolve(main.params["httpAlwaysReadyInstances"]) == 1
    text = MAIN.read_text(encoding="utf-8")
    assert re.search(r"httpPerInstanceConcurrency:\s*httpPerInstanceConcurrency", text)
    assert re.search(r"httpAlwaysReadyInstances:\s*httpAlwaysReadyInstances", text)
    deploy = DEPLOY_DOC.read_text(encoding="utf-8")
    assert "`httpAlwaysReadyInstances`" in deploy and "USD" in deploy  # documented with its cost


def test_storage_redundancy_is_a_parameter_that_defaults_to_zone_or_geo_redundancy():
    main = bicep(MAIN)
    assert main.resolve(main.params["storageSku"]) in {"Standard_ZRS", "Standard_GZRS", "Standard_RAGZRS"}
    assert re.search(r"skuName:\s*storageSku", MAIN.read_text(encoding="utf-8"))
    storage_file = bicep(BICEP / "modules" / "storage.bicep")
    assert storage_file.resolve(storage_file.params["skuName"]) != "Standard_LRS"
    account = next(r for r in storage_file.resources() if r.type.startswith("Microsoft.Storage/storageAccounts@"))
    assert account.value["sku"]["name"] == Expr("skuName")


def test_the_python_worker_has_a_thread_for_every_queue_message_host_json_lets_an_instance_run():
    queues = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["queues"]
    at_once = queues["batchSize"] + queues["newBatchThreshold"]
    text = FUNCTION_APP.read_text(encoding="utf-8")
    found = re.search(r"var pythonThreads = min\(32, max\((\d+), httpPerInstanceConcurrency\)\)", text)
    assert "PYTHON_THREADPOOL_THREAD_COUNT: '${pythonThreads}'" in text
    assert found is not None, "the function app sets PYTHON_THREADPOOL_THREAD_COUNT from the queue batch and HTTP concurrency"
    assert int(found.group(1)) == at_once <= 32
