"""The README's "chapter -> modules" table, generated from the notebooks' imports.

``python tests/repo/chapter_modules.py`` rewrites the table in README.md (between the
``chapter-modules`` markers); ``tests/repo/test_package_layout.py`` fails when it is stale.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src"
START, END = "<!-- chapter-modules:start -->", "<!-- chapter-modules:end -->"


def _exports(package: str) -> dict[str, str]:
    """Name -> defining module, from a part's ``__init__`` (``from .x import name`` lines)."""
    init = PACKAGE.joinpath(*package.split("."), "__init__.py")
    if not init.exists():
        return {}
    return {alias.asname or alias.name: node.module for node in ast.parse(init.read_text()).body
            if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}


def modules_used(notebook: Path) -> list[str]:
    """The library modules whose names a notebook's code imports, without ``llmbook.``."""
    used: set[str] = set()
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = re.sub(r"^[%!].*$", "", "".join(cell["source"]), flags=re.M)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmbook."):
                exports = _exports(node.module)
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    is_module = PACKAGE.joinpath(*submodule.split(".")).with_suffix(".py").exists()
                    used.add(submodule if is_module else exports.get(alias.name, node.module))
    return sorted(m.removeprefix("llmbook.") for m in used)


def chapter_title(notebook: Path) -> str:
    first = json.loads(notebook.read_text())["cells"][0]
    title = next(line for line in "".join(first["source"]).splitlines() if line.startswith("# "))
    return title.lstrip("# ").strip()


def table() -> str:
    rows = ["| chapter | library modules it calls |", "|---|---|"]
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        modules = ", ".join(f"`{m}`" for m in modules_used(notebook))
        rows.append(f"| {notebook.stem.split('_')[0]}. {chapter_title(notebook)} | {modules} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"README.md lacks the {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    return f"{head}{START}\n{table()}\n{END}{rest.split(END, 1)[1]}"


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(readme_with_table(path.read_text()))
    sys.exit(0)
