"""seedward's own import-linter contract types (used by `.importlinter`; `lint-imports` runs them all).

  stdlib_only   these modules import only the standard library and the listed seedward modules
  core          no module of `container` outside the `upper` modules imports an `upper` module
  only_calls    only the `allowed` modules call `call` (e.g. libtorrent.session): read from the source
"""

import ast
import importlib.util
import sys

from importlinter import Contract, ContractCheck, fields, output


def _within(module: str, names) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def _line(graph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    where = f" (l.{details[0]['line_number']})" if details else ""
    return f"{importer} -> {imported}{where}"


def _report(check: ContractCheck) -> None:
    for line in check.metadata["violations"]:
        output.print_error(f"- {line}", bold=False)
        output.new_line()


class StdlibOnlyContract(Contract):
    type_name = "stdlib_only"
    modules = fields.ListField(subfield=fields.StringField())
    allowed = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        allowed = set(self.allowed)
        bad = []
        for module in sorted(m for m in graph.modules if _within(m, self.modules)):
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if imported in allowed or imported.split(".")[0] in sys.stdlib_module_names:
                    continue
                bad.append(_line(graph, module, imported))
        return ContractCheck(kept=not bad, metadata={"violations": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _report(check)


class CoreContract(Contract):
    type_name = "core"
    container = fields.StringField()
    upper = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        upper = list(self.upper)
        bad = []
        for module in sorted(graph.modules):
            if not _within(module, [self.container]) or _within(module, upper):
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if _within(imported, upper):
                    bad.append(_line(graph, module, imported))
        return ContractCheck(kept=not bad, metadata={"violations": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _report(check)


class OnlyCallsContract(Contract):
    type_name = "only_calls"
    call = fields.StringField()  # "package.function", e.g. libtorrent.session
    allowed = fields.ListField(subfield=fields.StringField())
    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        package, name = str(self.call).rsplit(".", 1)
        bad = []
        for module in sorted(m for m in graph.modules if _within(m, self.packages)):
            if _within(module, self.allowed):
                continue
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.origin or not spec.origin.endswith(".py"):
                continue
            with open(spec.origin, encoding="utf-8") as fh:
                tree = ast.parse(fh.read(), spec.origin)
            bad += [f"{module} calls {self.call} (l.{n})" for n in _calls(tree, package, name)]
        return ContractCheck(kept=not bad, metadata={"violations": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        _report(check)


def _calls(tree: ast.AST, package: str, name: str) -> list[int]:
    """Lines calling package.name, through `import package [as x]` or `from package import name [as y]`."""
    modules, functions = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == package}
        elif isinstance(node, ast.ImportFrom) and node.module == package:
            functions |= {a.asname or a.name for a in node.names if a.name == name}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == name and isinstance(f.value, ast.Name) and f.value.id in modules:
            lines.append(node.lineno)
        elif isinstance(f, ast.Name) and f.id in functions:
            lines.append(node.lineno)
    return lines
