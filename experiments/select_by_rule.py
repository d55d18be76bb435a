"""The selection rule of results/default_v12 applied to evaluate tables of the seed-11 validation sets.

Each FOLDER holds some of the sets of results/default_v19/README.md (physics, random, random-coarse-voxels: stored
4x / 8x masks; val-eq4, val-rnd8: data/val_random/val with fastMRI's equispaced 4x and random 8x masks) and, since
default_v20, real (data/select_real: the real anatomy of data/README.md, stored masks); their tables are merged
(later folders win, per method and cell). The shipped codec is the method ``--base`` (default ``ours``); every other
method scored on all cells is a candidate. A candidate passes when it is ahead on random-coarse-voxels in mean PSNR
and mean SSIM over 4x and 8x, and at most 0.1 dB / 0.003 SSIM behind the base in every other cell; of those that
pass, the higher mean SSIM over all cells is taken (PSNR breaks ties). Prints a Markdown table.
Usage: python experiments/select_by_rule.py [--base METHOD] FOLDER [FOLDER ...]
"""

import csv
import sys
from pathlib import Path

SETS = {
    "physics": (4, 8),
    "random": (4, 8),
    "random-coarse-voxels": (4, 8),
    "val-eq4": (4,),
    "val-rnd8": (8,),
    "real": (4, 8),
}
CELLS = [(name, acc) for name, accs in SETS.items() for acc in accs]
COARSE = [cell for cell in CELLS if cell[0] == "random-coarse-voxels"]


def scores(*folders: Path) -> dict[str, dict[tuple[str, int], tuple[float, float]]]:
    """{method: {(set, acceleration): (PSNR, SSIM)}} from each set's summary.csv; later folders win."""
    out: dict[str, dict[tuple[str, int], tuple[float, float]]] = {}
    for name, folder in ((name, folder) for folder in folders for name in SETS):
        if not (folder / name / "summary.csv").is_file():
            continue
        with open(folder / name / "summary.csv") as f:
            for row in csv.DictReader(f):
                cell = (name, int(row["acceleration"]))
                out.setdefault(row["method"], {})[cell] = (float(row["PSNR"]), float(row["SSIM"]))
    return out


def verdict(cand: dict, base: dict, cells: list) -> str:
    failed = []
    for k in (0, 1):
        if sum(cand[c][k] for c in COARSE) <= sum(base[c][k] for c in COARSE):
            failed.append(f"random-coarse-voxels mean {('PSNR', 'SSIM')[k]} not ahead")
    for cell in cells:
        if cell not in COARSE and (cand[cell][0] < base[cell][0] - 0.1 or cand[cell][1] < base[cell][1] - 0.003):
            failed.append(f"{cell[0]} {cell[1]}x behind")
    return "; ".join(failed) or "passes"


def main(folders: list[Path], base_name: str = "ours") -> None:
    table = scores(*folders)
    base = table[base_name]
    cells = [c for c in CELLS if c in base]  # the sets the base was scored on (before default_v20: no real)
    mean = lambda s: sum(s[c][1] for c in cells) / len(cells)  # noqa: E731
    print("| method | " + " | ".join(f"{n} {a}x" for n, a in cells) + " | mean SSIM | rule |")
    print("|---|" + "---|" * (len(cells) + 2))
    for name, s in [(f"{base_name} (BASE)", base), *((n, s) for n, s in table.items() if n != base_name)]:
        if any(c not in s for c in cells):
            continue  # not scored on every set (e.g. an earlier round's candidates)
        row = " | ".join(f"{s[c][0]:.2f} / {s[c][1]:.4f}" for c in cells)
        print(f"| {name} | {row} | {mean(s):.5f} | {verdict(s, base, cells) if s is not base else ''} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    base_name = "ours"
    if args[:1] == ["--base"]:
        base_name, args = args[1], args[2:]
    main([Path(a) for a in args], base_name)
