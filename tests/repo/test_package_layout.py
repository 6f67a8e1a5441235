"""The package mirrors the book: one subpackage per part, layered, no cycles, short modules.

Run alone with ``pytest tests/repo/test_package_layout.py``; the graph is read with ``ast``
(:mod:`package_graph`), and one child process per part checks what importing it loads.
"""

import ast
import json
import subprocess
import sys

import pytest

from .chapter_modules import readme_with_table
from .package_graph import PACKAGE, find_cycle, load_modules, long_functions, part_edges

#: What each part may import, in the book's order: a part builds on the ones before it.
PART_IMPORTS = {
    "core": set(),
    "plots": set(),
    "data": {"core"},
    "models": {"core", "data"},
    "training": {"core", "data", "models"},
    "pretraining": {"core", "data", "models", "training"},
    "generation": {"core", "data", "models", "training", "pretraining"},
    "adaptation": {"core", "data", "models", "training", "pretraining", "generation"},
    # adaptation asks chapter 11's zero-shot question through the generation part's chat helpers
    "practice": {"core", "data", "models", "training", "generation", "adaptation"},
    "deployment": {"core", "data", "models", "training", "generation", "adaptation"},
    "responsible": {"core", "data", "models", "training", "generation", "adaptation",
                    "deployment"},
}

MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
#: Longer functions, and why they stay whole.
LONG_FUNCTIONS: dict[str, str] = {}
#: Imports inside functions, and why (a heavy dependency deferred).
DEFERRED_IMPORTS = {
    "llmbook.cli": "each subcommand loads its part (onnxruntime, fastapi, peft...) on use",
    "llmbook.core.profiles": "torch, only to ask for CUDA, and huggingface_hub, only to look in "
                             "its cache for the gpu profile's model: `import llmbook.core` "
                             "stays light",
}

MODULES = load_modules()


def test_no_import_cycle():
    assert find_cycle(MODULES) is None, f"import cycle: {' -> '.join(find_cycle(MODULES))}"


def test_every_part_is_declared_and_imports_only_earlier_parts():
    parts = {m.part for m in MODULES.values() if m.part}
    assert parts <= set(PART_IMPORTS), f"undeclared parts: {parts - set(PART_IMPORTS)}"
    for part, imported in part_edges(MODULES).items():
        assert imported <= PART_IMPORTS[part], (
            f"llmbook.{part} imports {sorted(imported - PART_IMPORTS[part])}, "
            "a later part of the book")


@pytest.mark.parametrize("name", sorted(n for n, m in MODULES.items()
                                        if m.path.name == "__init__.py" and n != "llmbook"))
def test_each_part_has_a_docstring_naming_its_chapters_and_an_all(name):
    module = MODULES[name]
    doc = ast.get_docstring(module.tree)
    assert doc and "chapter" in doc.lower() or name.endswith("plots"), name
    exported = [n for n in module.tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
    assert exported, f"{name} has no __all__"


def test_modules_and_functions_are_short():
    too_long = []
    for module in MODULES.values():
        lines = len(module.path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module.name}: {lines} lines")
        too_long += [f"{name}: {length}-line function" for name, length in
                     long_functions(module, MAX_FUNCTION_LINES) if name not in LONG_FUNCTIONS]
    assert not too_long, "split these: " + "; ".join(too_long)


def test_imports_are_at_module_level_unless_declared():
    deferred = [f"{m.name}:{line} {text}" for m in MODULES.values() if m.name not in
                DEFERRED_IMPORTS for line, text in m.deferred]
    assert not deferred, "move to module level (or declare why not): " + "; ".join(deferred)


def test_no_module_shadows_a_library_it_wraps():
    stems = {m.path.stem for m in MODULES.values()}
    assert not stems & {"peft", "evaluate", "datasets", "transformers", "accelerate"}


@pytest.mark.parametrize("part", sorted(PART_IMPORTS))
def test_importing_a_part_loads_only_the_parts_it_declares(part):
    if not (PACKAGE / part).is_dir():
        pytest.skip(f"llmbook.{part} does not exist yet")
    probe = (f"import sys, json; import llmbook.{part}; "
             "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules "
             "if m.startswith('llmbook.') and m.count('.') >= 1})))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    loaded = set(json.loads(done.stdout)) - {part, "core"}  # `import llmbook` sets up core
    allowed = PART_IMPORTS[part]
    assert loaded <= allowed, f"import llmbook.{part} also loaded {sorted(loaded - allowed)}"


def test_readme_chapter_to_modules_table_is_current():
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    assert readme == readme_with_table(readme), (
        "README.md's chapter -> modules table is stale: run python tests/repo/chapter_modules.py")
