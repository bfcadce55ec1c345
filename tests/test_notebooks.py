"""Every notebook in notebooks/ runs top to bottom on the small simulated region.

The demo run is made once into a session folder (``REGENMAP_DEMO_DIR``) that all
notebooks reuse. The kernel is the current interpreter's ``python3``; nothing is
registered globally. Notebooks are committed without outputs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from regenmap.pipelines.demo import demo

    out = tmp_path_factory.mktemp("notebook-demo")
    demo(out, quiet=True)
    return out


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("REGENMAP_DEMO_DIR", str(demo_dir))
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    print(f"{path.name}: {time.perf_counter() - t0:.1f}s")
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "error"]
    assert not errors
    assert os.environ["REGENMAP_DEMO_DIR"] == str(demo_dir)
