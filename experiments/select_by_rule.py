"""The selection rule of results/default_v12 applied to evaluate tables of the seed-11 validation sets.

BASE holds the shipped codec as method ``ours``; CANDIDATES the candidates (any method names), each folder with
the five sets of results/default_v19/README.md (physics, random, random-coarse-voxels: stored 4x / 8x masks;
val-eq4, val-rnd8: data/val_random/val with fastMRI's equispaced 4x and random 8x masks). A candidate passes when
it is ahead on random-coarse-voxels in mean PSNR and mean SSIM over 4x and 8x, and at most 0.1 dB / 0.003 SSIM
behind ``ours`` in every other cell; of those that pass, the higher mean SSIM over the eight cells is taken (PSNR
breaks ties). Prints a Markdown table. Usage: python experiments/select_by_rule.py BASE CANDIDATES
"""

import csv
import sys
from pathlib import Path

SETS = {"physics": (4, 8), "random": (4, 8), "random-coarse-voxels": (4, 8), "val-eq4": (4,), "val-rnd8": (8,)}
CELLS = [(name, acc) for name, accs in SETS.items() for acc in accs]
COARSE = [cell for cell in CELLS if cell[0] == "random-coarse-voxels"]


def scores(folder: Path) -> dict[str, dict[tuple[str, int], tuple[float, float]]]:
    """{method: {(set, acceleration): (PSNR, SSIM)}} from each set's summary.csv."""
    out: dict[str, dict[tuple[str, int], tuple[float, float]]] = {}
    for name in SETS:
        with open(folder / name / "summary.csv") as f:
            for row in csv.DictReader(f):
                cell = (name, int(row["acceleration"]))
                out.setdefault(row["method"], {})[cell] = (float(row["PSNR"]), float(row["SSIM"]))
    return out


def verdict(cand: dict, base: dict) -> str:
    failed = []
    for k in (0, 1):
        if sum(cand[c][k] for c in COARSE) <= sum(base[c][k] for c in COARSE):
            failed.append(f"random-coarse-voxels mean {('PSNR', 'SSIM')[k]} not ahead")
    for cell in CELLS:
        if cell not in COARSE and (cand[cell][0] < base[cell][0] - 0.1 or cand[cell][1] < base[cell][1] - 0.003):
            failed.append(f"{cell[0]} {cell[1]}x behind")
    return "; ".join(failed) or "passes"


def main(base_dir: Path, cand_dir: Path) -> None:
    base = scores(base_dir)["ours"]
    mean = lambda s: sum(s[c][1] for c in CELLS) / len(CELLS)  # noqa: E731
    print("| method | " + " | ".join(f"{n} {a}x" for n, a in CELLS) + " | mean SSIM | rule |")
    print("|---|" + "---|" * (len(CELLS) + 2))
    rows = [("ours (BASE)", base), *((name, s) for name, s in scores(cand_dir).items() if name != "ours")]
    for name, s in rows:
        if len(s) < len(CELLS):
            print(f"| {name} | not run on every set |" + " |" * len(CELLS))
            continue
        cells = " | ".join(f"{s[c][0]:.2f} / {s[c][1]:.4f}" for c in CELLS)
        print(f"| {name} | {cells} | {mean(s):.5f} | {verdict(s, base) if s is not base else ''} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
