"""The package's layers run one way, and no module imports another in a cycle.

    cli, and the public facades (gluon_cnns, .export, .quantize, .distributed, .utils)
      -> viz                         (Grad-CAM and pictures of trained nets, run reports)
      -> training / inference        (neither imports the other)
        -> artifacts                 (the run folder, its records, the export's files)
          -> data / models           (neither imports the other)

The base modules (``BASE``) may be imported from every layer; they import only one
another and data / models. Every ``import`` counts, at module level or inside a
function, and so do the names a package exports lazily (``lazy_exports``), which are
imported when first read. The modules are read with ``ast``, never imported.
"""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "gluon_cnns")

BASE = {"errors", "io", "cpu", "_lazy", "_version", "threads", "shapes", "gluoncv_import",
        "settings", "ownership", "envcheck"}
FACADES = {"", "export", "quantize", "distributed", "utils"}
# Higher imports lower; equal ranks in different layers do not import each other.
RANKS = {"cli": 4, "facade": 4, "viz": 3.5, "training": 3, "inference": 3, "artifacts": 2,
         "data": 1, "models": 1, "base": 0}


def _modules(root=PACKAGE):
    """``{dotted name: file}`` of every module of the package (a package is its __init__)."""
    found = {}
    for here, folders, files in os.walk(root):
        folders[:] = [f for f in folders if not f.startswith((".", "__"))]
        for name in files:
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(here, name), root)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(["gluon_cnns"] + parts)] = os.path.join(here, name)
    return found


def layer(module):
    """The layer of a dotted module name, or None for one the table does not place."""
    head = module.split(".")[1] if "." in module else ""
    if head in BASE:
        return "base"
    if head in FACADES:
        return "facade"
    return head if head in RANKS else None


def _absolute(module, is_package, level, name):
    """The absolute name that ``from <level dots><name>`` means inside ``module``."""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[:len(parts) - level + 1]
    return ".".join(parts + ([name] if name else []))


def _lazy_tables(tree):
    """``{relative module name: line}`` of the dicts a module passes to ``lazy_exports``."""
    tables = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    tables[target.id] = node.value
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports":
            for arg in node.args:
                table = tables.get(getattr(arg, "id", None))
                for value in table.values if table is not None else ():
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        names.setdefault(value.value, value.lineno)
    return names


def imports(modules):
    """``{module: {imported module: first line}}``, only the package's own modules."""
    graph = {}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        is_package = path.endswith("__init__.py")
        edges = {}

        def add(target, line):
            while target and target not in modules:  # `from pkg import name`: pkg
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.setdefault(target, line)

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = (_absolute(module, is_package, node.level, node.module) if node.level
                        else node.module)
                for alias in node.names:
                    add(base + "." + alias.name, node.lineno)
        for relative, line in _lazy_tables(tree).items():
            level = len(relative) - len(relative.lstrip("."))
            add(_absolute(module, is_package, level, relative.lstrip(".")), line)
        graph[module] = {t: line for t, line in edges.items() if t.startswith("gluon_cnns")}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def upward_imports(graph):
    """``["a -> b (line n): why"]`` for every import the layer table forbids."""
    wrong = []
    for module, targets in sorted(graph.items()):
        mine = layer(module)
        for target, line in sorted(targets.items()):
            theirs = layer(target)
            if mine == theirs or theirs == "base" and mine != "base":
                continue
            if mine == "base":
                allowed = theirs in ("data", "models")
            else:
                allowed = RANKS[theirs] < RANKS[mine]
            if not allowed:
                wrong.append("%s (%s, line %d) imports %s (%s)"
                             % (module, mine, line, target, theirs))
    return wrong


@pytest.fixture(scope="module")
def package():
    modules = _modules()
    return modules, imports(modules)


def test_every_module_has_a_layer(package):
    modules, _ = package
    unplaced = sorted(m for m in modules if layer(m) is None)
    assert not unplaced, "add these to the layer table of tests/test_layers.py: %s" % unplaced


def test_no_import_cycle(package):
    _, graph = package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_a_layer_above_its_own(package):
    _, graph = package
    wrong = upward_imports(graph)
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_checks_see_function_level_and_lazy_imports(tmp_path):
    """The graph holds an import made inside a function and a lazily exported name,
    so a cycle or an upward import hidden there is found too."""
    pkg = tmp_path / "gluon_cnns"
    (pkg / "data").mkdir(parents=True)
    (pkg / "training").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_lazy.py").write_text("")
    (pkg / "data" / "__init__.py").write_text(
        "from .._lazy import lazy_exports\n_LAZY = {'fit': '..training.fit'}\n"
        "__getattr__, __dir__ = lazy_exports(__name__, _LAZY)\n")
    (pkg / "data" / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "data" / "b.py").write_text("from .a import f\n")
    (pkg / "training" / "__init__.py").write_text("")
    (pkg / "training" / "fit.py").write_text("")
    modules = _modules(str(pkg))
    graph = imports(modules)
    assert find_cycle(graph) in (["gluon_cnns.data.a", "gluon_cnns.data.b", "gluon_cnns.data.a"],
                                 ["gluon_cnns.data.b", "gluon_cnns.data.a", "gluon_cnns.data.b"])
    assert upward_imports(graph) == [
        "gluon_cnns.data (data, line 2) imports gluon_cnns.training.fit (training)"]
