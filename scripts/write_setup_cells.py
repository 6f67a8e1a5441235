"""Write scripts/notebook_setup_cell.py as the first code cell of every notebook (tagged
``remove-cell``: the site hides it, Colab and Binder run it).  Checked by
tests/repo/test_notebooks.py; run ``python scripts/write_setup_cells.py`` after editing it."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP_CELL = (ROOT / "scripts" / "notebook_setup_cell.py").read_text()
TAG = "remove-cell"


def setup_cell() -> dict:
    return {"cell_type": "code", "execution_count": None, "id": "llmbook-setup",
            "metadata": {"tags": [TAG]},
            "outputs": [], "source": SETUP_CELL.rstrip("\n").splitlines(keepends=True)}


def is_setup_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and "".join(cell["source"]).startswith(
        SETUP_CELL.splitlines()[0])


def write(path: Path) -> None:
    notebook = json.loads(path.read_text())
    cells = [c for c in notebook["cells"] if not is_setup_cell(c)]
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    notebook["cells"] = cells[:first_code] + [setup_cell()] + cells[first_code:]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        write(notebook)
