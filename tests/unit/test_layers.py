"""Layers point one way, checked on the source (imports), so a violation fails here before it
hides in a code path.

    oracle/, sip/   pure: no sockets, processes, threads, asyncio, pytest; files only via resources
    harness/, targets/, server/, phone/   edges: nothing from the plugin, report/ or commands/
    server/   nothing from oracle/ (it is the system under test: a second implementation of the
              rules, so an oracle bug cannot pass unseen); its core, body builder, hooks and
              adapter import nothing from its faults layer
    no import cycles anywhere in the package
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "conformance"

PURE_LAYERS = ("oracle", "sip")
IO_MODULES = {
    "socket",
    "ssl",
    "asyncio",
    "selectors",
    "subprocess",
    "signal",
    "threading",
    "pytest",
    "http",
    "urllib.request",
}
PURE_MAY_IMPORT = (
    "conformance.oracle",
    "conformance.sip",
    "conformance.errors",
    "conformance.resources",
)
FILE_ACCESS = {"open", "read_text", "read_bytes", "write_text", "write_bytes"}

EDGE_LAYERS = ("harness", "targets", "server", "phone")
ABOVE_EDGES = (
    "conformance.pytest_plugin",
    "conformance.report",
    "conformance.commands",
    "conformance.case",
    "conformance.testing",
    "conformance.suite",
    "conformance.cli",
)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from x import y`` counts x and x.y)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node):
                skip.update(id(n) for child in node.body for n in ast.walk(child))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _module_name(path).split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{alias.name}" for alias in node.names}
            # ``from pkg import module`` depends on the module; ``from pkg import name`` on pkg.
            known = {s for s in subs if s in _MODULES}
            names.update(known or {base})
            if not known or known != subs:
                names.add(base)
            names.update(subs)
    return names


_MODULES = {_module_name(p) for p in PACKAGE.rglob("*.py")}


def _files(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


def _matches(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_layers_import_no_io(layer):
    assert _files(layer), f"conformance/{layer}/ must exist"
    for path in _files(layer):
        names = imported_modules(path)
        bad = {n for n in names if _matches(n, IO_MODULES)}
        bad |= {
            n for n in names if n.startswith("conformance") and not _matches(n, PURE_MAY_IMPORT)
        }
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}; {layer}/ is pure"


@pytest.mark.parametrize("layer", PURE_LAYERS)
def test_pure_layers_read_files_only_through_resources(layer):
    for path in _files(layer):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {
            (node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", ""))
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
        }
        bad = calls & FILE_ACCESS
        assert not bad, (
            f"{path.relative_to(PACKAGE)} calls {sorted(bad)}: use conformance.resources"
        )


@pytest.mark.parametrize("layer", EDGE_LAYERS)
def test_edges_import_nothing_above_them(layer):
    for path in _files(layer):
        bad = {n for n in imported_modules(path) if _matches(n, ABOVE_EDGES)}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)} from above its layer"


def test_server_core_imports_nothing_from_its_faults():
    """Faults hook into the core from outside; the core never knows which faults exist."""
    for name in ("core.py", "protocol.py", "streams.py", "bodies.py", "hooks.py"):
        path = PACKAGE / "server" / name
        bad = {n for n in imported_modules(path) if _matches(n, ("conformance.server.faults",))}
        assert not bad, f"server/{name} imports {sorted(bad)}"


def test_server_core_is_sans_io_with_an_injected_clock():
    """The core, its body builder and its hooks take ``now`` from the caller: no clock, socket
    or event loop of their own, so unit tests drive them with a fake clock."""
    for name in ("core.py", "bodies.py", "hooks.py"):
        names = imported_modules(PACKAGE / "server" / name)
        bad = {n for n in names if _matches(n, IO_MODULES | {"time", "datetime"})}
        assert not bad, f"server/{name} imports {sorted(bad)}"


def test_server_imports_nothing_from_the_oracle():
    """The reference server builds its bodies with its own code: were it the oracle's, a bug in
    the oracle would pass the clean run and every mutant alike (issue 12)."""
    files = _files("server")
    assert any(p.name == "bodies.py" for p in files)
    for path in files:
        bad = {n for n in imported_modules(path) if _matches(n, ("conformance.oracle",))}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)} from the oracle"


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for imported in _runtime_module_deps(path):
            if imported in modules and imported != name:
                deps.add(imported)
        graph[name] = deps
    return graph


def _runtime_module_deps(path: Path) -> set[str]:
    """Modules ``path`` needs at import or call time; ``from pkg import module`` names only the
    module (the package's ``__init__`` running first is Python's order, not a dependency)."""
    names = imported_modules(path, runtime_only=True)
    return {n for n in names if n in _MODULES and not any(m.startswith(n + ".") for m in names)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS, white/grey/black)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[child] == 1:
                return [*path[path.index(child) :], child]
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_no_import_cycles():
    # A package's __init__ importing its own submodules is not a cycle worth failing on when the
    # submodule imports the package only for a sibling; count edges between distinct modules.
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_violations(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("import socket\nfrom conformance.harness.sipp import Sipp\n")
    assert {"socket", "conformance.harness.sipp"} <= imported_modules(sample)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
