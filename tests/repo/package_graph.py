"""The import graph of ``src/llmbook``, read with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "llmbook"


@dataclass
class Module:
    name: str  # dotted, e.g. llmbook.training.loop
    path: Path
    tree: ast.Module
    imports: set[str] = field(default_factory=set)  # llmbook modules imported, anywhere
    deferred: list[tuple[int, str]] = field(default_factory=list)  # imports inside a function

    @property
    def part(self) -> str | None:
        """The part package (``training``), None for top-level modules (cli, bench)."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 2 or self.path.name == "__init__.py" and len(parts) > 1 \
            else None


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.AST, known: set[str]) -> set[str]:
    """llmbook modules an import statement loads (a package and, for names, submodules)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.split(".")[0] == "llmbook"}
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
            and node.module.split(".")[0] == "llmbook":
        found = {node.module}
        found |= {f"{node.module}.{a.name}" for a in node.names
                  if f"{node.module}.{a.name}" in known}
        return found
    return set()


def load_modules() -> dict[str, Module]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p): Module(module_name(p), p, ast.parse(p.read_text())) for p in paths}
    known = set(modules)
    for module in modules.values():
        for node in ast.walk(module.tree):
            module.imports |= _targets(node, known)
        for func in ast.walk(module.tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        module.deferred.append((node.lineno, ast.unparse(node)))
        module.imports.discard(module.name)
    return modules


def find_cycle(modules: dict[str, Module]) -> list[str] | None:
    """One import cycle among the modules (package ``__init__`` edges included), or None."""
    graph = {name: {t for t in m.imports if t in modules} for name, m in modules.items()}
    # importing a module runs its packages' __init__ first: llmbook.a.b depends on llmbook.a
    for name in modules:
        parent = name.rsplit(".", 1)[0]
        while parent in modules and parent != "llmbook":
            graph[name].add(parent)
            parent = parent.rsplit(".", 1)[0] if "." in parent else ""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package importing its own submodules
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def part_edges(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Which parts each part imports (top-level modules left out)."""
    edges: dict[str, set[str]] = {}
    for module in modules.values():
        if module.part is None:
            continue
        for target in module.imports:
            if target in modules and modules[target].part not in (None, module.part):
                edges.setdefault(module.part, set()).add(modules[target].part)
    return edges


def long_functions(module: Module, limit: int) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(module.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                out.append((f"{module.name}.{node.name}", length))
    return out
