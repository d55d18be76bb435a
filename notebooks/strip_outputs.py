"""Strip notebook outputs before committing.

    python notebooks/strip_outputs.py [NOTEBOOK ...]      # rewrite in place (default: notebooks/*.ipynb)
    python notebooks/strip_outputs.py --check [NOTEBOOK ...]  # exit 1 if any notebook needs stripping

Every code cell loses its outputs, execution count and execution timestamps, except cells tagged
``keep-output``: those keep their image outputs (PNG) and nothing else, so no text output (which can
hold local paths or timings) is committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KEEP_TAG = "keep-output"
KEEP_MIME = "image/png"


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return ``nb`` stripped in place (see the module docstring)."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        keep = KEEP_TAG in cell.metadata.get("tags", [])
        outputs = []
        if keep:
            for out in cell.outputs:
                if out.get("output_type") in ("display_data", "execute_result") and KEEP_MIME in out.get("data", {}):
                    outputs.append(
                        nbformat.v4.new_output("display_data", data={KEEP_MIME: out["data"][KEEP_MIME]}, metadata={})
                    )
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _canonical(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb)


def needs_stripping(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    before = _canonical(nb)
    return _canonical(strip(nb)) != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="only report notebooks that need stripping")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    dirty = []
    for path in paths:
        if args.check:
            if needs_stripping(path):
                dirty.append(path)
            continue
        nb = nbformat.read(path, as_version=4)
        nbformat.write(strip(nb), path)
    for path in dirty:
        print(f"{path}: has outputs to strip (run python notebooks/strip_outputs.py)")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
