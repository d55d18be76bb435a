"""The shift-gap study's tables (issue 16) from the evaluate outputs of experiments/tta_gap_eval.sh.

    python experiments/tta_gap_table.py RUN --oracle ORACLE_PHYSICS_DIR --out results/tta_gap/summary.md
    python experiments/tta_gap_table.py RUN --oracle ORACLE_PHYSICS_DIR [--chosen cascades] --out ...  (one codec: RUN
        holds its splits itself; without ``RUN/select``, --chosen names the adapters chosen elsewhere)

RUN holds one folder per codec (``ssl``, ``nossl``), each with ``select`` (target-physics validation
volumes) and ``test`` / ``physics`` / ``shift`` evaluate outputs whose methods are ``none`` and one per
adapter set. The adapter set is chosen on ``select`` only (largest mean SSIM gain over the accelerations,
then PSNR); the test splits are then read for that choice. The shift gap on the physics split is the
oracle's score (a codec trained on the physics-shift ranges) minus the codec's without adaptation; the share
closed is the adaptation's gain over that gap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

SPLITS = {"test": "in distribution", "physics": "physics shift", "shift": "dipy anatomy", "dipy": "dipy anatomy"}


def load(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "summary.csv").set_index(["method", "acceleration"])


def gains(frame: pd.DataFrame) -> pd.DataFrame:
    """Per adapter set and acceleration: SSIM / PSNR gain over ``none`` and seconds per slice."""
    rows = []
    for (method, acc), r in frame.iterrows():
        if method == "none":
            continue
        base = frame.loc[("none", acc)]
        rows.append(
            {
                "method": method,
                "acceleration": acc,
                "SSIM": r.SSIM,
                "dSSIM": r.SSIM - base.SSIM,
                "PSNR": r.PSNR,
                "dPSNR": r.PSNR - base.PSNR,
                "s_per_slice": r.s_per_slice,
                "extra_s_per_slice": r.s_per_slice - base.s_per_slice,
            }
        )
    return pd.DataFrame(rows)


def choose(select: pd.DataFrame) -> str:
    mean = gains(select).groupby("method")[["dSSIM", "dPSNR"]].mean()
    return str(mean.sort_values(["dSSIM", "dPSNR"], ascending=False).index[0])


def fmt_gain_table(g: pd.DataFrame) -> list[str]:
    lines = ["| adapters | acc | SSIM | ΔSSIM | PSNR | ΔPSNR (dB) | s/slice (extra) |", "|---|---|---|---|---|---|---|"]
    for _, r in g.sort_values(["acceleration", "method"]).iterrows():
        lines.append(
            f"| {r.method} | {r.acceleration}x | {r.SSIM:.4f} | {r.dSSIM:+.4f} | {r.PSNR:.2f} | {r.dPSNR:+.2f} "
            f"| {r.s_per_slice:.2f} ({r.extra_s_per_slice:+.2f}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--oracle", type=Path, required=True, help="evaluate output of the oracle on the physics split")
    parser.add_argument("--chosen", help="the adapter method, when RUN holds the splits and no selection")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    oracle = load(args.oracle)
    out = ["# Per-scan adaptation and the shift gap", ""]
    codecs = sorted(p.name for p in args.run.iterdir() if (p / "select" / "summary.csv").is_file())
    for codec in codecs or [None]:
        root = args.run / codec if codec else args.run
        if (root / "select" / "summary.csv").is_file():
            select = load(root / "select")
            chosen = choose(select)
            out += [f"## codec `{codec or root.name}`: adapters chosen on the validation volumes: `{chosen}`", ""]
            out += ["### choice (target-physics validation volumes, not a test split)", ""]
            out += fmt_gain_table(gains(select))
        else:
            chosen = args.chosen or parser.error("RUN has no `select` results: name the adapters, --chosen")
        for split, title in SPLITS.items():
            if not (root / split / "summary.csv").is_file():
                continue
            frame = load(root / split)
            out += ["", f"### {title} (`{split}`)", "", *fmt_gain_table(gains(frame))]
            if split != "physics":
                continue
            out += [
                "",
                "Shift gap (oracle minus the codec without adaptation) and the share the chosen adapters close:",
                "",
            ]
            out += [
                "| acc | oracle SSIM | gap SSIM | closed | oracle PSNR | gap PSNR (dB) | closed |",
                "|---|---|---|---|---|---|---|",
            ]
            for acc in sorted({a for _, a in frame.index}):
                none, tta, ref = (
                    frame.loc[("none", acc)],
                    frame.loc[(chosen, acc)],
                    oracle.iloc[[i for i, (_, a) in enumerate(oracle.index) if a == acc][0]],
                )
                gap_s, gap_p = ref.SSIM - none.SSIM, ref.PSNR - none.PSNR
                share = lambda gain, gap: f"{gain / gap:.0%}" if gap > 0 else "no gap"  # noqa: E731
                out.append(
                    f"| {acc}x | {ref.SSIM:.4f} | {gap_s:+.4f} | {share(tta.SSIM - none.SSIM, gap_s)} | {ref.PSNR:.2f} "
                    f"| {gap_p:+.2f} | {share(tta.PSNR - none.PSNR, gap_p)} |"
                )
        out.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out) + "\n")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
