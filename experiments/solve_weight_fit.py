"""Fits the untrained solve's per-scan weight to the sweeps of experiments/solve_weight_sweep.py:

    log10 w = c0 + c1 log10(sigma^2 / P) + c2 log10(map_misfit)

by a grid search that maximises the mean over slices of  dPSNR + 100 dSSIM + 200 min(0, dSSIM)  against the
network alone (1 dB counts as 0.01 SSIM; an SSIM loss counts three times), each slice's score read off its sweep
at w (linear in log10 w between the ladder's rungs, the end rungs beyond it). Also reports leave-one-group-out
estimates: the fit without a group (the folder of the file: one simulator preset), scored on that group.

Usage (repository root): python experiments/solve_weight_fit.py SWEEP.jsonl [SWEEP.jsonl ...]
"""

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

C0 = np.arange(-8.0, 8.01, 0.25)
C1 = np.arange(0.0, 3.01, 0.25)
C2 = np.arange(0.0, 6.01, 0.5)


def objective(d_psnr: np.ndarray, d_ssim: np.ndarray) -> np.ndarray:
    return d_psnr + 100 * d_ssim + 200 * np.minimum(0.0, d_ssim)


def load(paths: list[Path]) -> list[dict]:
    return [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.strip()]


def scores_at(rows: list[dict], log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rows, log10 w per row [N, ...] -> dPSNR, dSSIM against the network, interpolated on each row's ladder."""
    d_psnr, d_ssim = np.empty_like(log_w), np.empty_like(log_w)
    for i, r in enumerate(rows):
        ladder = np.log10(r["weights"])
        solve, net = np.array(r["solve"]), np.array(r["network"])
        d_psnr[i] = np.interp(log_w[i], ladder, solve[:, 0]) - net[0]
        d_ssim[i] = np.interp(log_w[i], ladder, solve[:, 1]) - net[1]
    return d_psnr, d_ssim


def features(rows: list[dict]) -> np.ndarray:
    return np.array([[np.log10(r["noise_to_signal"]), np.log10(r["map_misfit"])] for r in rows])


def fit(rows: list[dict]) -> tuple[tuple[float, float, float], float]:
    """-> (c0, c1, c2), the mean objective."""
    f = features(rows)
    grid = np.array(list(itertools.product(C0, C1, C2)))  # [G, 3]
    log_w = grid[:, 0][None] + f[:, :1] * grid[:, 1][None] + f[:, 1:] * grid[:, 2][None]  # [N, G]
    value = objective(*scores_at(rows, log_w)).mean(0)
    best = int(np.argmax(value))
    return tuple(float(c) for c in grid[best]), float(value[best])


def report(name: str, rows: list[dict], c: tuple[float, float, float]) -> None:
    f = features(rows)
    log_w = c[0] + c[1] * f[:, 0] + c[2] * f[:, 1]
    d_psnr, d_ssim = scores_at(rows, log_w)
    value = objective(d_psnr, d_ssim).mean()
    print(f"{name}: {len(rows)} slices, dPSNR {d_psnr.mean():+.2f} dB, dSSIM {d_ssim.mean():+.4f}, "
          f"worst {d_psnr.min():+.2f} dB / {d_ssim.min():+.4f}, objective {value:+.3f}")  # fmt: skip


def report_best_rung(name: str, rows: list[dict]) -> None:
    """The ceiling of any weight rule: each slice at the rung of its own ladder that scores best."""
    best = []
    for r in rows:
        solve, net = np.array(r["solve"]), np.array(r["network"])
        value = objective(solve[:, 0] - net[0], solve[:, 1] - net[1])
        best.append((*(solve[int(np.argmax(value))] - net), value.max()))
    d_psnr, d_ssim, value = np.array(best).T
    print(f"{name}: each slice's best rung: dPSNR {d_psnr.mean():+.2f} dB, dSSIM {d_ssim.mean():+.4f}, "
          f"objective {value.mean():+.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+")
    args = parser.parse_args()
    rows = load(args.sweeps)
    c, value = fit(rows)
    print(f"fit on all {len(rows)} slices: c0 {c[0]:+.2f}, c1 {c[1]:.2f}, c2 {c[2]:.2f} (objective {value:+.3f})")
    report("all, in-sample", rows, c)
    for mask in sorted({r["mask"] for r in rows}):
        subset = [r for r in rows if r["mask"] == mask]
        report(f"  {mask}", subset, c)
        report_best_rung(f"  {mask}", subset)
    for group in sorted({r["file"].split("/")[0] for r in rows}):
        held = [r for r in rows if r["file"].split("/")[0] == group]
        c_out, _ = fit([r for r in rows if r["file"].split("/")[0] != group])
        report(f"left out {group} (fit c {c_out[0]:+.2f} {c_out[1]:.2f} {c_out[2]:.2f})", held, c_out)


if __name__ == "__main__":
    main()
