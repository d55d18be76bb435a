"""Write the app's bundled example scans from the embedded simulated dataset (deterministic).

    python app/make_examples.py [--out app/examples]

Two 4-slice, 8-coil, 128x128 brain volumes (the ``small`` preset's anatomy and physics):
``example_fully_sampled.h5`` (train/val format: k-space + ``reconstruction_rss``) and
``example_test_format_acc4.h5`` (fastMRI test format: 4x equispaced masked k-space + ``mask``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from mrirecon.data.synth import PRESETS, build_volume, load_mni, write_full, write_test_pair

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
SLICES = 4
SEED = 0


def make_examples(out: Path = EXAMPLES_DIR) -> list[Path]:
    """Simulate the two example volumes into ``out``; returns the written files."""
    preset = dataclasses.replace(PRESETS["small"], slices=SLICES)
    out.mkdir(parents=True, exist_ok=True)
    full = build_volume("val", 0, preset, SEED, load_mni(), None)
    full.name = "example_fully_sampled"
    write_full(out / f"{full.name}.h5", full)
    test = build_volume("test", 0, preset, SEED, load_mni(), None)
    test.name = "example_test_format"
    with tempfile.TemporaryDirectory() as truth:  # the test file's ground truth is not shipped
        fname = write_test_pair(out, Path(truth), test, acceleration=4)
    return [out / f"{full.name}.h5", out / fname]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the app's example scans.")
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR)
    args = parser.parse_args(argv)
    for path in make_examples(args.out):
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
