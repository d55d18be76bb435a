"""One Markdown summary of the backbone / Trigger / TTA study (``experiments/study.sh``) from its evaluate CSVs.

    python experiments/study_tables.py [RESULTS_DIR] [--prefix study] [--out RESULTS_DIR/study.md]
    python experiments/study_tables.py --training RUN_DIR --out RESULTS_DIR/study_s{SEED}_training.csv

Reads ``RESULTS_DIR/PREFIX_s{SEED}_{test,shift}/summary.csv`` (or the older flat
``PREFIX_s{SEED}_{test,shift}.csv``), written by ``python -m mrirecon.evaluate``: one row per method
and acceleration with ``NMSE``, ``PSNR``, ``SSIM``, ``s_per_slice``, ...; ``test`` is the
in-distribution test split, ``shift`` the shift split of the simulated set; and, where present,
``PREFIX_s{SEED}_training.csv`` (epochs / steps / seconds of each codec, collected from the codec cards of one
seed's run folder by the second form). Writes:

* per method, test set and acceleration: mean ± sample std over seeds of SSIM / PSNR / NMSE;
* per distribution shift: the gap (in-distribution SSIM minus shifted SSIM), what TTA gains on the shifted
  data and the fraction of the gap it closes (mean gain / mean gap over seeds), and the TTA method's seconds
  per 16-slice volume (its ``s_per_slice`` x 16) with the extra over the same codec without TTA;
* TTA with and without on every test set (in distribution included);
* the optimiser steps each variant made within the study's wall-clock budget.

Naming follows the study script: ``NAME-tta`` is codec ``NAME`` with test-time adaptation;
``nirvana-token-4x-only`` was trained at 4x only (the 4x->8x shift, against ``nirvana-token`` trained at 4x
and 8x, both scored on the same 8x data).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mrirecon.io.files import write_text_atomically
from mrirecon.io.markdown import markdown_table

METRICS = (("SSIM", 4), ("PSNR", 2), ("NMSE", 4))
SPLITS = {"test": "in-distribution test split", "shift": "shift split"}
TTA_SUFFIX = "-tta"
VOLUME_SLICES = 16
ACCEL_SHIFT = ("nirvana-token", "nirvana-token-4x-only", 8)  # reference (4x+8x), shifted (4x only), tested at


@dataclass(frozen=True)
class ShiftRow:
    """One comparison: ``(split, method)`` of the in-distribution reference, of the shifted run and of the
    shifted run with TTA (None: no TTA row)."""

    shift: str
    label: str
    in_dist: tuple[str, str]
    shifted: tuple[str, str]
    tta: tuple[str, str] | None
    accelerations: tuple[int, ...] | None = None  # None: every acceleration present


def load_study(directory: str | Path, prefix: str = "study") -> pd.DataFrame:
    """Every ``PREFIX_s{SEED}_{SPLIT}/summary.csv`` (an ``evaluate --out`` folder) or older
    ``PREFIX_s{SEED}_{SPLIT}.csv`` of ``directory`` in one frame with ``seed`` and ``split`` columns."""
    pattern = re.compile(rf"^{re.escape(prefix)}_s(\d+)_({'|'.join(SPLITS)})(\.csv)?$")
    candidates = [*Path(directory).glob(f"{prefix}_s*_*.csv"), *Path(directory).glob(f"{prefix}_s*_*/summary.csv")]
    found = [
        (m, path)
        for path in candidates
        if (m := pattern.match(path.name if path.name != "summary.csv" else path.parent.name))
        and (path.name == "summary.csv") != bool(m.group(3))
    ]
    if not found:
        raise FileNotFoundError(f"no {prefix}_s<SEED>_<{'|'.join(SPLITS)}>.csv files in {directory}")
    found.sort(key=lambda mp: (list(SPLITS).index(mp[0].group(2)), int(mp[0].group(1))))  # test split first
    frames = [pd.read_csv(path).assign(seed=int(m.group(1)), split=m.group(2)) for m, path in found]
    return pd.concat(frames, ignore_index=True)


def training_frame(run_dir: str | Path) -> pd.DataFrame:
    """epochs / steps / seconds / device of every codec folder ``run_dir/NAME/card.json`` (method = NAME)."""
    rows = []
    for card in sorted(Path(run_dir).glob("*/card.json")):
        train = json.loads(card.read_text()).get("training") or {}
        rows.append({"method": card.parent.name, **{k: train.get(k) for k in ("epochs", "steps", "seconds", "device")}})
    return pd.DataFrame(rows, columns=["method", "epochs", "steps", "seconds", "device"])


def load_training(directory: str | Path, prefix: str = "study") -> pd.DataFrame:
    """Every ``PREFIX_s{SEED}_training.csv`` of ``directory`` with a ``seed`` column (empty when there is none)."""
    pattern = re.compile(rf"^{re.escape(prefix)}_s(\d+)_training\.csv$")
    frames = [
        pd.read_csv(path).assign(seed=int(m.group(1)))
        for path in sorted(Path(directory).glob(f"{prefix}_s*_training.csv"))
        if (m := pattern.match(path.name))
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["method", "steps", "seed"])


def variant_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std over seeds per (split, acceleration, method) of SSIM / PSNR / NMSE / s_per_slice."""
    cols = [name for name, _ in METRICS] + ["s_per_slice"]
    grouped = frame.groupby(["split", "acceleration", "method"], sort=False)
    out = grouped[cols].mean()
    out = out.join(grouped[cols].std(ddof=1).add_suffix("_std")).join(grouped["seed"].nunique().rename("seeds"))
    return out.reset_index()


def default_shift_rows(frame: pd.DataFrame) -> list[ShiftRow]:
    """The study's shifts from the methods present: (a) 4x->8x, (b) anatomy / coil count (test -> shift split,
    every method scored on both, TTA where ``NAME-tta`` was scored on the shift split)."""
    methods = {split: set(frame.loc[frame["split"] == split, "method"]) for split in SPLITS}
    rows = []
    ref, shifted, acc = ACCEL_SHIFT
    if {ref, shifted} <= methods["test"]:
        tta = ("test", shifted + TTA_SUFFIX) if shifted + TTA_SUFFIX in methods["test"] else None
        rows.append(ShiftRow("4x -> 8x", f"{shifted} vs {ref}", ("test", ref), ("test", shifted), tta, (acc,)))
    ordered = frame.drop_duplicates("method")["method"]
    for method in ordered:
        if method.endswith(TTA_SUFFIX) or method not in methods["test"] or method not in methods["shift"]:
            continue
        tta = ("shift", method + TTA_SUFFIX) if method + TTA_SUFFIX in methods["shift"] else None
        rows.append(ShiftRow("anatomy / coils", method, ("test", method), ("shift", method), tta))
    return rows


def _values(frame: pd.DataFrame, key: tuple[str, str], acc: int, column: str) -> pd.Series:
    split, method = key
    sel = frame[(frame["split"] == split) & (frame["method"] == method) & (frame["acceleration"] == acc)]
    return sel.groupby("seed")[column].mean()


def _mean_std(x: pd.Series) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def shift_table(frame: pd.DataFrame, rows: list[ShiftRow]) -> pd.DataFrame:
    """Per shift row and acceleration, over the seeds present in every part of the row: ``gap`` (in-distribution
    minus shifted SSIM, mean and std), ``gain`` (shifted+TTA minus shifted SSIM), ``closed`` (mean gain / mean
    gap; NaN when the mean gap is not positive or there is no TTA row), TTA seconds per 16-slice volume
    (``tta_s_volume``) and its extra over the shifted codec without TTA (``tta_extra_s_volume``)."""
    out = []
    for row in rows:
        accs = row.accelerations or sorted(frame.loc[frame["split"] == row.shifted[0], "acceleration"].unique())
        for acc in accs:
            ind = _values(frame, row.in_dist, acc, "SSIM")
            sh = _values(frame, row.shifted, acc, "SSIM")
            seeds = ind.index.intersection(sh.index)
            tt = _values(frame, row.tta, acc, "SSIM") if row.tta else pd.Series(dtype=float)
            if row.tta and len(tt):
                seeds = seeds.intersection(tt.index)
            if not len(seeds):
                continue
            gap = ind[seeds] - sh[seeds]
            rec = {
                "shift": row.shift,
                "label": row.label,
                "acceleration": int(acc),
                "seeds": len(seeds),
                "ssim_in_dist": float(ind[seeds].mean()),
                "ssim_shifted": float(sh[seeds].mean()),
            }
            rec["gap"], rec["gap_std"] = _mean_std(gap)
            rec.update(ssim_tta=math.nan, gain=math.nan, gain_std=math.nan, closed=math.nan)
            rec.update(tta_s_volume=math.nan, tta_extra_s_volume=math.nan)
            if row.tta and len(tt):
                gain = tt[seeds] - sh[seeds]
                rec["ssim_tta"] = float(tt[seeds].mean())
                rec["gain"], rec["gain_std"] = _mean_std(gain)
                if rec["gap"] > 0:
                    rec["closed"] = rec["gain"] / rec["gap"]
                t_tta = _values(frame, row.tta, acc, "s_per_slice")[seeds]
                t_plain = _values(frame, row.shifted, acc, "s_per_slice")[seeds]
                rec["tta_s_volume"] = float(t_tta.mean()) * VOLUME_SLICES
                rec["tta_extra_s_volume"] = float((t_tta - t_plain).mean()) * VOLUME_SLICES
            out.append(rec)
    return pd.DataFrame(out)


def tta_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every ``NAME-tta`` against ``NAME`` on the same test set: SSIM with and without, the change (mean, std
    over seeds) and the seconds per 16-slice volume."""
    rows = []
    keys = frame[["split", "method"]].drop_duplicates().itertuples(index=False)
    for split, method in keys:
        if not method.endswith(TTA_SUFFIX):
            continue
        base = method.removesuffix(TTA_SUFFIX)
        for acc in sorted(frame.loc[(frame["split"] == split) & (frame["method"] == method), "acceleration"].unique()):
            tt, pl = _values(frame, (split, method), acc, "SSIM"), _values(frame, (split, base), acc, "SSIM")
            seeds = tt.index.intersection(pl.index)
            if not len(seeds):
                continue
            delta, delta_std = _mean_std(tt[seeds] - pl[seeds])
            t_tta = _values(frame, (split, method), acc, "s_per_slice")[seeds]
            t_plain = _values(frame, (split, base), acc, "s_per_slice")[seeds]
            rows.append(
                {
                    "split": split,
                    "method": base,
                    "acceleration": int(acc),
                    "seeds": len(seeds),
                    "ssim": float(pl[seeds].mean()),
                    "ssim_tta": float(tt[seeds].mean()),
                    "delta": delta,
                    "delta_std": delta_std,
                    "tta_s_volume": float(t_tta.mean()) * VOLUME_SLICES,
                    "tta_extra_s_volume": float((t_tta - t_plain).mean()) * VOLUME_SLICES,
                }
            )
    return pd.DataFrame(rows)


def _pm(mean: float, std: float, digits: int, signed: bool = False) -> str:
    if mean is None or math.isnan(mean):
        return "–"
    sign = "+" if signed else ""
    text = f"{mean:{sign}.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def _num(x: float, digits: int, signed: bool = False) -> str:
    return "–" if math.isnan(x) else f"{x:{'+' if signed else ''}.{digits}f}"


def markdown(frame: pd.DataFrame, sources: list[str] | None = None, training: pd.DataFrame | None = None) -> str:
    seeds = sorted(frame["seed"].unique())
    lines = ["# Backbone / Trigger / TTA study: summary", ""]
    lines.append(f"Seeds: {', '.join(map(str, seeds))}" + (f"; from {', '.join(sources)}." if sources else "."))
    lines += [
        "",
        "Mean ± sample std over seeds of each method's per-volume means (fastMRI protocol, `mrirecon.evaluate`); "
        "one seed: the mean only.",
        "",
    ]
    var = variant_table(frame)
    for split, title in SPLITS.items():
        part = var[var["split"] == split]
        for acc in sorted(part["acceleration"].unique()):
            lines += [f"## {title}, {int(acc)}x", ""]
            rows = [
                [
                    str(r["method"]),
                    str(int(r["seeds"])),
                    *(_pm(r[m], r[f"{m}_std"], d) for m, d in METRICS),
                    f"{r['s_per_slice']:.3f}",
                ]
                for _, r in part[part["acceleration"] == acc].iterrows()
            ]
            lines += markdown_table(["method", "seeds", "SSIM", "PSNR (dB)", "NMSE", "s/slice"], rows) + [""]

    shifts = shift_table(frame, default_shift_rows(frame))
    if len(shifts):
        lines += ["## Distribution shifts", ""]
        lines += [
            "gap = in-distribution SSIM − shifted SSIM; TTA gain = shifted SSIM with TTA − without; closed = mean "
            "gain / mean gap (– where the gap is not positive or the codec has no TTA row; † where the gap is "
            "not larger than its std over seeds). 4x -> 8x: the codec trained at 4x only against the one "
            "trained at 4x and 8x, both on the 8x test data. anatomy / coils: one codec on the test split "
            "(MNI152 anatomy, 8 coils) and on the shift split (dipy subjects, 12-16 coils, 2x readout "
            "oversampling); the zero-filled row is the change of the data alone. TTA s/volume: the TTA "
            f"method's s/slice × {VOLUME_SLICES} (extra: minus the same codec without TTA).",
            "",
        ]
        rows = []
        for _, r in shifts.iterrows():
            closed = "–" if math.isnan(r["closed"]) else f"{100 * r['closed']:.0f}%"
            if closed != "–" and not (math.isnan(r["gap_std"]) or r["gap"] > r["gap_std"]):
                closed += " †"
            rows.append(
                [
                    r["shift"],
                    r["label"],
                    f"{r['acceleration']}x",
                    str(r["seeds"]),
                    _num(r["ssim_in_dist"], 4),
                    _num(r["ssim_shifted"], 4),
                    _pm(r["gap"], r["gap_std"], 4, signed=True),
                    _num(r["ssim_tta"], 4),
                    _pm(r["gain"], r["gain_std"], 4, signed=True),
                    closed,
                    _num(r["tta_s_volume"], 2),
                    _num(r["tta_extra_s_volume"], 2),
                ]
            )
        header = ["shift", "method", "acc", "seeds", "SSIM in-dist", "SSIM shifted", "gap", "SSIM shifted+TTA"]
        header += ["TTA gain", "closed", "TTA s/volume", "extra s/volume"]
        lines += markdown_table(header, rows) + [""]

    tta = tta_table(frame)
    if len(tta):
        lines += ["## TTA with and without, every test set", ""]
        rows = [
            [
                SPLITS[r["split"]],
                r["method"],
                f"{r['acceleration']}x",
                str(r["seeds"]),
                _num(r["ssim"], 4),
                _num(r["ssim_tta"], 4),
                _pm(r["delta"], r["delta_std"], 4, signed=True),
                _num(r["tta_s_volume"], 2),
                _num(r["tta_extra_s_volume"], 2),
            ]
            for _, r in tta.iterrows()
        ]
        header = ["test set", "method", "acc", "seeds", "SSIM", "SSIM+TTA", "Δ SSIM", "TTA s/volume", "extra s/volume"]
        lines += markdown_table(header, rows) + [""]

    if training is not None and len(training):
        lines += ["## Training within the budget", ""]
        grouped = training.groupby("method", sort=False)
        cols = ["steps", "epochs", "seconds"]
        mean, std, seeds = grouped[cols].mean(), grouped[cols].std(ddof=1), grouped["seed"].nunique()
        rows = [
            [
                str(method),
                str(seeds[method]),
                _pm(mean.at[method, "steps"], std.at[method, "steps"], 0),
                _pm(mean.at[method, "epochs"], std.at[method, "epochs"], 1),
                _pm(mean.at[method, "seconds"], std.at[method, "seconds"], 1),
            ]
            for method in mean.index
        ]
        lines += markdown_table(["method", "seeds", "optimiser steps", "epochs", "training s"], rows) + [""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python experiments/study_tables.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", default="results", help="folder of the evaluate CSVs")
    parser.add_argument("--prefix", default="study", help="CSV names PREFIX_s<SEED>_<test|shift>.csv")
    parser.add_argument("--out", help="Markdown file (default: RESULTS/PREFIX.md); with --training: the CSV")
    parser.add_argument("--training", metavar="RUN_DIR", help="collect the codec cards of RUN_DIR/*/ into --out")
    args = parser.parse_args(argv)
    if args.training:
        if not args.out:
            parser.error("--training needs --out")
        frame = training_frame(args.training)
        write_text_atomically(args.out, frame.to_csv(index=False))
        print(f"wrote {args.out} ({len(frame)} codecs)")
        return 0
    try:
        frame = load_study(args.results, args.prefix)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    sources = sorted({f"`{args.prefix}_s{s}_{sp}.csv`" for s, sp in frame[["seed", "split"]].itertuples(index=False)})
    out = Path(args.out) if args.out else Path(args.results) / f"{args.prefix}.md"
    write_text_atomically(out, markdown(frame, sources, load_training(args.results, args.prefix)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
