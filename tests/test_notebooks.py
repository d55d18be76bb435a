"""The notebooks under notebooks/ run top to bottom at their small size, and are committed stripped."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell; the small size takes a few seconds per notebook


def _code(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


def test_notebooks_exist():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_small(path: Path, monkeypatch, tmp_path):
    monkeypatch.setenv("MRIRECON_NB_SMALL", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' scratch folders and small-size figures
    # One thread per kernel: on a shared 2-core runner, two OpenMP threads per process made the small
    # run ~4x slower (spin-waiting), while one thread costs little at this size.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert list(tmp_path.glob("mrirecon-fig-*/*.png")) or "savefig" not in _code(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path: Path):
    spec = importlib.util.spec_from_file_location("strip_outputs", NOTEBOOK_DIR / "strip_outputs.py")
    strip_outputs = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("strip_outputs", strip_outputs)
    spec.loader.exec_module(strip_outputs)
    assert not strip_outputs.needs_stripping(path), f"run python notebooks/strip_outputs.py {path.name}"
    nb = nbformat.read(path, as_version=4)
    code = _code(nb)
    assert "MRIRECON_NB_SMALL" in nb.cells[1].source, "the first code cell reads the small-size switch"
    private = re.findall(r"^\s*(?:from\s+mrirecon[\w.]*\s+import\s+.*\b_\w+|import\s+mrirecon[\w.]*\._\w+)", code, re.M)
    assert not private, f"private imports: {private}"
    assert not re.search(r"[\"'](?:/(?:work|home|tmp|root)/|[A-Z]:\\\\)", code), "machine-specific path in code"
