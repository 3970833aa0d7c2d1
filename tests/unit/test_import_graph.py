"""No import circles in src/salmon: lower layers never import higher ones.

Every `import` / `from ... import` in every module counts, including the ones inside
functions (a lazy import is still a dependency), so the graph is the layering as written.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], src: Path = SRC) -> set[str]:
    """The salmon modules that `path` imports anywhere in its body."""
    me = module_name(path, src)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the submodule when there is one, else the package
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import salmon.x.y` -> salmon.x.y; attributes dropped
                name = name.rpartition(".")[0]
            if name and name != me:
                found.add(name)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    files = {module_name(p, src): p for p in (src / "salmon").rglob("*.py")}
    return {name: imported_modules(path, set(files), src) - {"salmon"} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path a -> b -> ... -> a, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_on_hand_made_graphs():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": set(), "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


def test_function_level_and_relative_imports_count(tmp_path):
    pkg = tmp_path / "salmon"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from salmon.high import g\n    return g\n")
    (pkg / "high.py").write_text("from salmon import low\nimport salmon.sub.leaf as leaf\n")
    (pkg / "sub" / "leaf.py").write_text("from .. import other\n")
    (pkg / "other.py").write_text("import os\n")
    graph = import_graph(tmp_path)
    assert graph["salmon.low"] == {"salmon.high"}
    assert graph["salmon.high"] == {"salmon.low", "salmon.sub.leaf"}
    assert graph["salmon.sub.leaf"] == {"salmon.other"}
    assert find_cycle(graph) == ["salmon.high", "salmon.low", "salmon.high"]


def test_src_salmon_has_no_import_cycles():
    graph = import_graph()
    assert "salmon.cli" in graph and "salmon.stages" in graph["salmon.cli"]  # the graph is not empty
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)
