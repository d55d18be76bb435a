"""Issue 17's MRI study table from the outputs of experiments/backbone_study.sh.

    python experiments/backbone_study_table.py OUT [OUT ...] --out results/backbone_study/summary.md

Each OUT holds ``<variant>-s<seed>/`` folders with a codec card, and ``eval-<split>-<acc>/`` evaluate outputs
whose methods are ``<variant>-s<seed>`` (no adaptation) and ``<variant>-s<seed>+tta`` (10 adaptation steps), with
``zero-filled`` beside them. Per variant, split, acceleration and adaptation: mean over the seeds ± the half-width
of a 95% Student-t interval of that mean. Differences against ``pretrained`` are paired by seed (same seed: same
codec initialisation, data order and masks), so the interval is the one of the per-seed differences.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from scipy import stats

SPLITS = {"test": "in distribution", "physics": "physics shift", "shift": "dipy anatomy"}
ORDER = ["zero-filled", "pretrained", "random", "none", "pretrained-off", "pretrained-scan"]
REFERENCE = "zero-filled"  # scored once per split, no seed


def collect(roots: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long table (variant, seed, split, acceleration, method, SSIM, PSNR) and per-run training facts.

    Scores come from ``eval-<split>-<acc>/summary.csv`` (methods ``RUN`` and ``RUN+tta``) or, in the layout of
    the first pass, from ``<run>/<split>/summary.csv`` (methods ``plain`` and ``tta``).
    """
    rows, runs = [], []

    def add(split: str, frame: pd.DataFrame, method_of: Callable[[str], tuple[str, str]]) -> None:
        for _, r in frame.iterrows():
            name, method = method_of(r.method)
            variant, seed = (name, -1) if name == REFERENCE else name.rsplit("-s", 1)
            rows.append({"variant": variant, "seed": int(seed), "split": split, "acc": int(r.acceleration),
                         "method": method, "SSIM": r.SSIM, "PSNR": r.PSNR,
                         "volumes": int(r.volumes), "slices": int(r.slices)})  # fmt: skip

    for root in roots:
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name.startswith("eval-") and (folder / "summary.csv").is_file():
                split = folder.name.split("-")[1]
                add(split, pd.read_csv(folder / "summary.csv"),
                    lambda m: (m[: -len("+tta")], "tta") if m.endswith("+tta") else (m, "plain"))  # fmt: skip
                continue
            if "-s" not in folder.name:
                continue
            variant, seed = folder.name.rsplit("-s", 1)
            card = folder / "card.json"
            if card.is_file():
                training = json.loads(card.read_text()).get("training", {})
                runs.append({"variant": variant, "seed": int(seed), "steps": training.get("steps"),
                             "seconds": training.get("seconds")})  # fmt: skip
            for split in SPLITS:
                if (folder / split / "summary.csv").is_file():
                    add(split, pd.read_csv(folder / split / "summary.csv"),
                        lambda m, run=folder.name: (run, m))  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(runs)


def interval(values: pd.Series) -> tuple[float, float, int]:
    """Mean, 95% half-width (Student t over the seeds; nan for one seed) and the number of seeds."""
    n = int(values.count())
    mean = float(values.mean())
    if n < 2:
        return mean, float("nan"), n
    return mean, float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / n**0.5), n


def cell(values: pd.Series, digits: int, signed: bool = False) -> str:
    mean, half, n = interval(values)
    sign = "+" if signed else ""
    return f"{mean:{sign}.{digits}f}" + (f" ± {half:.{digits}f}" if n > 1 else "")


def row(title: str, acc: int, method: str, cells: list[str]) -> str:
    return f"| {title} | {acc}x | {'10 steps' if method == 'tta' else 'none'} | " + " | ".join(cells) + " |"


def table(long: pd.DataFrame, metric: str, digits: int) -> list[str]:
    variants = [v for v in ORDER if v in set(long.variant)]
    head = "| split | acc | adaptation | " + " | ".join(variants) + " |"
    lines = [head, "|" + "---|" * (3 + len(variants))]
    for split, title in SPLITS.items():
        for acc in sorted(long.acc.unique()):
            for method in ("plain", "tta"):
                sel = long[(long.split == split) & (long.acc == acc)]
                reference = sel[sel.variant == REFERENCE]
                sel = pd.concat([reference, sel[(sel.method == method) & (sel.variant != REFERENCE)]])
                if sel.empty:
                    continue
                cells = [cell(sel[sel.variant == v][metric], digits) for v in variants]
                lines.append(row(title, acc, method, cells))
    return lines


def paired(long: pd.DataFrame, metric: str, digits: int) -> list[str]:
    """Per-seed differences against ``pretrained`` (same seed), mean ± 95% half-width."""
    long = long[long.variant != REFERENCE]
    wide = long.pivot_table(index=["split", "acc", "method", "seed"], columns="variant", values=metric)
    others = [v for v in ORDER if v in wide.columns and v != "pretrained"]
    lines = ["| split | acc | adaptation | " + " | ".join(f"{v} − pretrained" for v in others) + " |",
             "|" + "---|" * (3 + len(others))]  # fmt: skip
    if "pretrained" not in wide.columns:
        return []
    groups = dict(list(wide.groupby(level=["split", "acc", "method"])))
    for (split, acc, method), group in sorted(groups.items(), key=lambda kv: list(SPLITS).index(kv[0][0])):
        cells = [cell(group[v] - group["pretrained"], digits, signed=True) for v in others]
        lines.append(row(SPLITS[split], acc, method, cells))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    long, runs = collect(args.roots)
    if long.empty:
        raise SystemExit("no evaluate outputs found under " + ", ".join(map(str, args.roots)))
    seeds = sorted(s for s in long.seed.unique() if s >= 0)
    sizes = long.groupby("split")[["volumes", "slices"]].max()
    scored = "; ".join(f"{SPLITS[k]} {r.volumes} volumes, {r.slices} slices" for k, r in sizes.iterrows())
    out = ["# What language pretraining buys the codecs (issue 17)", "",
           f"Mean over seeds {', '.join(map(str, seeds))} ± half-width of the 95% Student-t interval "
           f"(zero-filled: one value). Scored per acceleration: {scored}.", ""]  # fmt: skip
    if not runs.empty:
        steps = runs.groupby("variant")[["steps", "seconds"]].agg(["min", "max"])
        out += ["Training per run (steps, seconds: min–max over seeds):", ""]
        for variant, r in steps.iterrows():
            out.append(f"- {variant}: {r[('steps', 'min')]:.0f}–{r[('steps', 'max')]:.0f} steps, "
                       f"{r[('seconds', 'min')]}–{r[('seconds', 'max')]} s")  # fmt: skip
        out.append("")
    for metric, digits in (("SSIM", 4), ("PSNR", 2)):
        out += [f"## {metric}", "", *table(long, metric, digits), ""]
        out += [f"### {metric} differences against `pretrained`, paired by seed", "", *paired(long, metric, digits), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out))
    long.to_csv(args.out.with_suffix(".csv"), index=False)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
