"""The package's module-level import graph has no cycle (issue 18: results layer)."""

from __future__ import annotations

import ast
from pathlib import Path

import mgfast

PACKAGE = Path(mgfast.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """mgfast modules imported when ``path`` is imported: its module-level imports, not those
    inside functions or under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("mgfast"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    root = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{root}.{base}" if base else root
                if not base.startswith("mgfast"):
                    continue
                for a in node.names:  # `from . import grid` imports the module mgfast.grid
                    sub = f"{base}.{a.name}"
                    out.add(sub if is_module(sub) else base)

    visit(tree.body)
    # A package's __init__ always runs before its modules: an edge to it is no cycle (the
    # names it takes from there, such as __version__, are set before any import).
    return {m for m in out if m != me and not (PACKAGE.parent / m.replace(".", "/")).is_dir()}


def is_module(name: str) -> bool:
    """Whether mgfast.x.y names a module or package (Python or a compiled extension)."""
    p = PACKAGE.parent / name.replace(".", "/")
    return (
        p.is_dir() or any(p.parent.glob(p.name + ".*py*")) or any(p.parent.glob(p.name + ".*.so"))
    )


def graph() -> dict[str, set[str]]:
    return {module_name(p): top_level_imports(p) for p in PACKAGE.rglob("*.py")}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (c := dfs(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (c := dfs(m)):
            return c
    return None


def test_the_import_graph_has_no_cycle():
    g = graph()
    assert "mgfast.results" in g and "mgfast.catalog_files" in g["mgfast.results"]
    cycle = find_cycle(g)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
