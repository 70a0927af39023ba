"""Imports point one way: interfaces -> pipelines/inference -> models -> config/geometry/types, with no cycles.

Read from the source with ``ast`` (nothing is imported): every ``import enliven...`` of every module, at module level
or inside a function, is an edge. A package counts as imported by ``from enliven.x import y`` (and so does its
submodule ``y``, when it is one).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Rank of each top-level part of the package: a module may import parts of its own rank or lower only.
RANKS = {
    "errors": 0,
    "types": 0,
    "geometry": 0,
    "polygons": 0,
    "face_mesh": 0,
    "pose": 0,  # body parts from pose landmarks and the part warp (numpy)
    "_tensorflow": 0,  # keeps TensorFlow out of processes that do not use it
    "families": 0,  # the registry names its families' parts as strings, imported on use
    "config": 1,
    "models": 2,
    "io": 3,
    "examples": 3,  # paths of the bundled example inputs
    "preprocess": 3,
    "data": 3,
    "weights": 3,
    "motion": 3,  # face motion: pose/expression, edits, the motion VAE's sampler
    "export": 4,
    "backends": 5,
    "inference": 6,
    "prepare": 6,
    "train": 6,
    "evaluate": 7,
    "pipelines": 7,
    "live": 7,
    "tuning": 8,
    "notebook": 8,  # the Jupyter app: an interface beside the CLI, on inference and live
    "batch": 8,  # batch runs over job files (local processes, Ray)
    "server": 8,  # the REST job server
    "cli": 9,
    "__main__": 9,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (SRC / "enliven").rglob("*.py")}


def _imports(path: Path, known: set[str], *, top_level_only: bool) -> set[str]:
    """The enliven modules ``path`` imports at run time (``if TYPE_CHECKING:`` blocks left out); with
    ``top_level_only``, only those imported when the module itself is imported (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    blocks = (ast.If, ast.Try, ast.With, ast.For, ast.While, ast.ExceptHandler)

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("enliven"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("enliven"):
                found.add(node.module)
                found.update({f"{node.module}.{alias.name}" for alias in node.names} & known)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif not top_level_only or isinstance(node, blocks):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        visit(children)

    visit(tree.body)
    return found & known


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_imports_a_higher_layer() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if name == "enliven":
            continue  # the package's lazy re-exports
        rank = RANKS[_part(name)]
        for target in _imports(path, set(modules), top_level_only=False):
            if target != "enliven" and RANKS[_part(target)] > rank:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_imports_have_no_cycles() -> None:
    """Not even through imports inside functions (a deferred import still ties the two modules together)."""
    modules = _modules()
    graph = {name: _imports(path, set(modules), top_level_only=False) - {name} for name, path in modules.items()}
    # A package imports its own submodules to re-export them; that is not a cycle of the code's layering.
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return found
