"""The shape of the package's imports, read from the source with ``ast`` (nothing is
imported): no circular imports in pyutils, no private name (a leading
underscore) imported from another module, and no name imported through a module
of pyutils that only imports it itself (no re-export hubs: each name comes from
the module that defines it; a package's ``__init__`` may gather names).

Every import statement counts, imports inside functions included: an import
moved into a function to break a cycle still is one.  A module's graph edges
are its explicit imports (``from pkg import sub`` is an edge to ``pkg.sub``
when that is a module, else to ``pkg``); the implicit import of a parent
package's ``__init__`` is not an edge.

Each test fails listing every offender.  The known offenders that cannot be
fixed yet are allow-listed below, each with its reason: a new offender fails,
and so does an entry that is no longer needed, so the lists only shrink.
"""
import ast
import os
from collections import defaultdict

from tests.conftest import ROOT

PACKAGE = "pyutils"

# Imports that close a cycle, as (importer, imported module): none left.
ALLOWED_CYCLE_EDGES = {}

# Private names imported across modules, as (importer, source module, name): none left.
ALLOWED_PRIVATE_IMPORTS = {}


def module_files(root=ROOT, package=PACKAGE):
    """{dotted module name: path} of every .py file under the package."""
    modules = {}
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, package)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for filename in sorted(filenames):
            if filename.endswith(".py"):
                path = os.path.join(dirpath, filename)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                modules[".".join(parts)] = path
    return modules


def imports_of(module, path, modules):
    """(line, imported module, names) of each import in ``path``, relative ones resolved;
    ``imported module`` is the nearest enclosing module of ``modules`` (None: outside)."""
    def owner(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    is_package = os.path.basename(path) == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, owner(alias.name), alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = sub if sub in modules else owner(base)
                yield node.lineno, target, base, [alias.name]


def import_graph(modules):
    """{importer: {imported: [line, ...]}} over the package's modules."""
    graph = {name: defaultdict(list) for name in modules}
    for name, path in modules.items():
        for line, target, _, _ in imports_of(name, path, modules):
            if target is not None and target != name:
                graph[name][target].append(line)
    return graph


def strongly_connected(graph):
    """Components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def a_cycle(graph, component):
    """One shortest cycle through the component's first module, as a list of modules."""
    start, members = component[0], set(component)
    paths, seen = [[start]], {start}
    while paths:
        next_paths = []
        for path in paths:
            for w in sorted(graph[path[-1]]):
                if w == start:
                    return path + [start]
                if w in members and w not in seen:
                    seen.add(w)
                    next_paths.append(path + [w])
        paths = next_paths
    return [start]


def test_no_circular_imports():
    modules = module_files()
    graph = import_graph(modules)
    stale = sorted(edge for edge in ALLOWED_CYCLE_EDGES if edge[1] not in graph[edge[0]])
    for importer, imported in ALLOWED_CYCLE_EDGES:
        graph[importer].pop(imported, None)
    problems = []
    for component in strongly_connected(graph):
        cycle = a_cycle(graph, component)
        edges = [f"    {a} -> {b} ({os.path.relpath(modules[a], ROOT)}:"
                 f"{','.join(map(str, sorted(set(graph[a][b]))))})"
                 for a in component for b in sorted(graph[a]) if b in component]
        problems.append(f"cycle {' -> '.join(cycle)}; its imports:\n" + "\n".join(edges))
    problems += [f"allow-listed import {a} -> {b} is gone: remove it from ALLOWED_CYCLE_EDGES"
                 for a, b in stale]
    assert not problems, "\n".join(problems)


def private_imports(modules):
    """(importer, source module, name, file, line) of each private name imported from
    another module (``from m import _x``, or ``import m._x``)."""
    found = []
    for name, path in modules.items():
        for line, target, source, names in imports_of(name, path, modules):
            if not names:                      # import a.b._c
                names, source = [source.rpartition(".")[2]], source.rpartition(".")[0]
            for imported in names:
                if imported.startswith("_") and not imported.startswith("__"):
                    found.append((name, source, imported, os.path.relpath(path, ROOT), line))
    return found


def test_no_private_name_imported_from_another_module():
    found = private_imports(module_files())
    offenders = [f"{path}:{line}: {source}.{name}" for importer, source, name, path, line in found
                 if (importer, source, name) not in ALLOWED_PRIVATE_IMPORTS]
    used = {(importer, source, name) for importer, source, name, _, _ in found}
    stale = [f"allow-listed {entry} is gone: remove it from ALLOWED_PRIVATE_IMPORTS"
             for entry in sorted(set(ALLOWED_PRIVATE_IMPORTS) - used)]
    assert not offenders + stale, "\n".join(offenders + stale)


def defined_names(path):
    """Names a module defines at its top level (also inside a top-level if/try):
    functions, classes and assignment targets; names it only imports are not."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    blocks = [tree.body]
    while blocks:
        for node in blocks.pop():
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for t in targets for n in ast.walk(t)
                             if isinstance(n, ast.Name))
            elif isinstance(node, ast.If):
                blocks += [node.body, node.orelse]
            elif isinstance(node, ast.Try):
                blocks += [node.body, node.orelse, node.finalbody]
                blocks += [handler.body for handler in node.handlers]
    return names


def reexported_imports(modules, root=ROOT, dirs=("pyutils", "tests", "bench", "local", "utils")):
    """(file, line, module, name) of each ``from module import name`` in the .py files
    under ``dirs`` where ``module`` is a module of ``modules`` (not a package) that does
    not define ``name`` (nor has it as a submodule)."""
    defined, found = {}, []
    for top in dirs:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", ".venv"))
            for filename in sorted(filenames):
                if not filename.endswith(".py"):
                    continue
                path = os.path.join(dirpath, filename)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                importer = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                for line, target, source, names in imports_of(importer, path, modules):
                    if (not names or target != source
                            or os.path.basename(modules[target]) == "__init__.py"):
                        continue
                    if target not in defined:
                        defined[target] = defined_names(modules[target])
                    found += [(os.path.relpath(path, root), line, source, name)
                              for name in names if name != "*" and name not in defined[target]]
    return found


def test_no_name_imported_through_a_module_that_does_not_define_it():
    found = reexported_imports(module_files())
    assert not found, "\n".join(
        f"{path}:{line}: {name} from {module}, which only imports it: import it from "
        f"the module that defines it" for path, line, module, name in found)


def test_the_checks_see_cycles_in_functions_and_private_names(tmp_path):
    """The checks themselves, on a package written here: a cycle closed by an import
    inside a function, a relative import of a private name and a name imported through
    a module that only imports it are all found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import helper\n")
    (pkg / "b.py").write_text("def helper():\n    from pkg import a\n    return a\n")
    (pkg / "c.py").write_text("from .b import _hidden, __version__\nimport pkg.b._x\n")
    (pkg / "d.py").write_text("from pkg.a import helper\nfrom pkg.b import helper as h\n"
                              "from pkg import a\n")
    modules = module_files(str(tmp_path), "pkg")
    graph = import_graph(modules)
    assert strongly_connected(graph) == [["pkg.a", "pkg.b"]]
    assert a_cycle(graph, ["pkg.a", "pkg.b"]) == ["pkg.a", "pkg.b", "pkg.a"]
    assert [(i, s, n) for i, s, n, _, _ in private_imports(modules)] == [
        ("pkg.c", "pkg.b", "_hidden"), ("pkg.c", "pkg.b", "_x")]
    assert reexported_imports(modules, str(tmp_path), ("pkg",)) == [
        ("pkg/c.py", 1, "pkg.b", "_hidden"), ("pkg/c.py", 1, "pkg.b", "__version__"),
        ("pkg/d.py", 1, "pkg.a", "helper")]


def test_backend_registry_is_complete_without_the_import_inside_backend_names():
    """backends.base no longer imports its own package inside backend_names (that closed
    a cycle): in a fresh interpreter the built-in back-ends are registered anyway."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "from pyutils.backends.base import "
                          "backend_names; print(' '.join(backend_names()))"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["cosine", "plda"]
