"""The AWS calls the Lambda code makes, read from its source rather than listed by hand.

PynamoDB model methods become DynamoDB actions (on the model's table or index when the
receiver names it), botocore client methods become IAM actions of the client's service.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
from pynamodb.indexes import Index
from pynamodb.models import Model

ROOT = Path(__file__).resolve().parents[2]

# PynamoDB method → the DynamoDB API action it sends.
PYNAMODB_ACTIONS = {
    "get": "GetItem",
    "refresh": "GetItem",
    "batch_get": "BatchGetItem",
    "save": "PutItem",
    "update": "UpdateItem",
    "delete": "DeleteItem",
    "batch_write": "BatchWriteItem",
    "query": "Query",
    "count": "Query",
    "scan": "Scan",
    "exists": "DescribeTable",
    "describe_table": "DescribeTable",
}
# Keywords only PynamoDB's methods take: they tell `execution.update(actions=...)` from dict.update.
PYNAMODB_KEYWORDS = {
    "actions",
    "condition",
    "consistent_read",
    "scan_index_forward",
    "last_evaluated_key",
    "range_key_condition",
    "filter_condition",
    "attributes_to_get",
}
# Methods no builtin type has, so any receiver calling them is a model.
MODEL_ONLY_METHODS = {"save", "refresh", "batch_get", "batch_write", "describe_table"}
# The @connections API is authorised by one action whatever the operation (the resource names the method).
IAM_ACTION_OVERRIDES = {"apigatewaymanagementapi": "execute-api:ManageConnections"}


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str
    action: str
    where: str
    table: str | None = None  # the model's table, when the receiver names the model
    index: str | None = None
    http_method: str | None = None


def source_files() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]


def models() -> dict[str, type[Model]]:
    from chalicelib import models as module
    from chalicelib.models import TABLES

    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, Model) and obj is not Model and obj in TABLES
    }


def table_of(model: type[Model]) -> str:
    """The model's table in the default stage (dev), as Settings names it."""
    from chalicelib.models import TABLES
    from chalicelib.settings import Settings

    return getattr(Settings.from_env({}), TABLES[model])


def model_indexes(model: type[Model]) -> dict[str, str]:
    """Attribute name → index name, for each secondary index of the model."""
    return {name: value.Meta.index_name for name, value in vars(model).items() if isinstance(value, Index)}


@cache
def _client_meta(service: str) -> Any:
    return botocore.session.get_session().create_client(service, region_name="us-east-1").meta


def _client_services(trees: list[ast.AST]) -> set[str]:
    """Services named as the first argument of create_client(...) or boto3.client(...)."""
    services = set()
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"create_client", "client"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                services.add(node.args[0].value)
    return services


def _model_of(receiver: ast.expr, known: dict[str, type[Model]]) -> tuple[type[Model] | None, str | None]:
    """The model (and index) a receiver names: Agent, Agent.by_owner, Agent(...), Agent.get(...)."""
    if isinstance(receiver, ast.Name) and receiver.id in known:
        return known[receiver.id], None
    if isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name) and receiver.value.id in known:
        model = known[receiver.value.id]
        return model, model_indexes(model).get(receiver.attr)
    if isinstance(receiver, ast.Call):
        func = receiver.func
        if isinstance(func, ast.Name) and func.id in known:
            return known[func.id], None
        if isinstance(func, ast.Attribute) and func.attr == "get":
            return _model_of(func.value, known)
    return None, None


def _pynamodb_call(node: ast.Call, known: dict[str, type[Model]], where: str) -> AwsCall | None:
    method = node.func.attr  # type: ignore[attr-defined]
    receiver = node.func.value  # type: ignore[attr-defined]
    model, index = _model_of(receiver, known)
    keywords = {k.arg for k in node.keywords}
    if model is None and method not in MODEL_ONLY_METHODS and not keywords & PYNAMODB_KEYWORDS:
        return None
    action = PYNAMODB_ACTIONS[method]
    table = table_of(model) if model is not None else None
    return AwsCall("dynamodb", action, f"dynamodb:{action}", where, table, index)


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


class _Scanner(ast.NodeVisitor):
    """One module: its AWS call sites and the names each function refers to, by scope.

    A scope is "module:function", "module:Class.method", or "module:" for module-level code.
    """

    def __init__(self, module: str, known: dict[str, type[Model]], client_methods: dict[str, tuple[str, str]]) -> None:
        self.module = module
        self.known = known
        self.client_methods = client_methods
        self.imports: dict[str, str] = {}  # local name → "module:name" or "module:" for a module
        self.defs: dict[str, set[str]] = {}  # top-level def or class → its scopes
        self.refs: dict[str, set[tuple[str, ...]]] = {}
        self.calls: dict[str, list[AwsCall]] = {}
        self.scope = f"{module}:"
        self.cls: str | None = None

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            target = f"{node.module}.{alias.name}" if node.module else alias.name
            as_module = ROOT.joinpath(*target.split(".")).with_suffix(".py").exists()
            self.imports[alias.asname or alias.name] = f"{target}:" if as_module else f"{node.module}:{alias.name}"

    def _enter(self, name: str, node: ast.AST) -> None:
        outer, self.scope = self.scope, f"{self.module}:{name}"
        self.generic_visit(node)
        self.scope = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if self.scope != f"{self.module}:" and self.cls is None:
            self.generic_visit(node)  # a nested function belongs to its enclosing scope
            return
        name = f"{self.cls}.{node.name}" if self.cls else node.name
        self.defs.setdefault(self.cls or node.name, set()).add(f"{self.module}:{name}")
        self._enter(name, node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.defs.setdefault(node.name, set())
        outer, self.cls = self.cls, node.name
        self.generic_visit(node)
        self.cls = outer

    def visit_Name(self, node: ast.Name) -> None:
        self.refs.setdefault(self.scope, set()).add(("name", node.id))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            self.refs.setdefault(self.scope, set()).add(("attr", node.value.id, node.attr))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute):
            call = self._aws_call(node)
            if call is not None:
                self.calls.setdefault(self.scope, []).append(call)
        self.generic_visit(node)

    def _aws_call(self, node: ast.Call) -> AwsCall | None:
        method = node.func.attr  # type: ignore[attr-defined]
        where = f"{self.module.replace('.', '/')}.py:{node.lineno}"
        if method in self.client_methods:
            service, operation = self.client_methods[method]
            meta = _client_meta(service)
            action = IAM_ACTION_OVERRIDES.get(service, f"{meta.service_model.signing_name}:{operation}")
            http_method = meta.service_model.operation_model(operation).http["method"]
            return AwsCall(service, operation, action, where, http_method=http_method)
        if method in PYNAMODB_ACTIONS:
            call = _pynamodb_call(node, self.known, where)
            imported = [self.known[name] for name in self.imports if name in self.known]
            if call is not None and call.table is None and len(imported) == 1:
                # A receiver the scan cannot type, in a module that uses one model: that model's table.
                call = replace(call, table=table_of(imported[0]))
            return call
        return None


def _resolve(scanner: _Scanner, scanners: dict[str, _Scanner], ref: tuple[str, ...], cls: str | None) -> set[str]:
    """The scopes a reference in `scanner`'s module can reach: its defs, an import's defs, self.x."""

    def defs_of(module: str, name: str) -> set[str]:
        target = scanners.get(module)
        return set(target.defs.get(name, set())) if target else set()

    if ref[0] == "name":
        name = ref[1]
        if name in scanner.defs:
            return defs_of(scanner.module, name)
        module, _, imported = scanner.imports.get(name, ":").partition(":")
        return defs_of(module, imported) if imported else set()
    base, attr = ref[1], ref[2]
    if base == "self" and cls:
        return {f"{scanner.module}:{cls}.{attr}"} & defs_of(scanner.module, cls)
    module, _, imported = scanner.imports.get(base, ":").partition(":")
    if module and not imported:
        return defs_of(module, attr)
    return set()


def aws_calls() -> list[AwsCall]:
    """Every AWS call the deployed handlers can reach, from app.py through chalicelib/.

    Code no handler reaches (the CLI's key creation, say) runs with the operator's own
    credentials, so the Lambdas' policies need not grant it.
    """
    trees = {_module_name(path): ast.parse(path.read_text(), filename=str(path)) for path in source_files()}
    known = models()
    client_methods: dict[str, tuple[str, str]] = {}
    for service in _client_services(list(trees.values())):
        for method, operation in _client_meta(service).method_to_api_mapping.items():
            client_methods[method] = (service, operation)
    scanners = {}
    for module, tree in trees.items():
        scanner = _Scanner(module, known, client_methods)
        scanner.visit(tree)
        scanners[module] = scanner
    # Module-level code runs on import, and app.py is what Lambda imports.
    pending = [f"{module}:" for module in scanners]
    pending += [scope for scopes in scanners["app"].defs.values() for scope in scopes]
    reached: set[str] = set()
    while pending:
        scope = pending.pop()
        if scope in reached:
            continue
        reached.add(scope)
        module, _, name = scope.partition(":")
        scanner = scanners[module]
        cls = name.split(".")[0] if "." in name else None
        for ref in scanner.refs.get(scope, set()):
            pending.extend(_resolve(scanner, scanners, ref, cls))
    return [call for scope in sorted(reached) for call in scanners[scope.partition(":")[0]].calls.get(scope, [])]
