"""Aggregation and output: per-volume rows -> one row per (method, acceleration); the Markdown, CSV and
terminal tables."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..io.files import write_text_atomically
from ..io.markdown import markdown_table
from ..metrics import METRIC_NAMES

TIMING_NOTE = (
    "s/slice: wall time of the method's reconstruction only (data loading and scoring excluded). "
    "Classical methods run one slice per worker process (1 thread each); SENSE and L1-wavelet include "
    "the ESPIRiT calibration, computed once per slice and shared (its share: `maps_s_per_slice` in the CSV); "
    "BART includes `bart ecalib`, its file writes and process starts. "
    "Learned methods: batched forward passes after one untimed warm-up."
)


def summarize_frame(per_volume: pd.DataFrame) -> pd.DataFrame:
    """Per-volume rows -> one row per (method, acceleration): means and sample std over volumes,
    seconds per slice (total seconds / total slices)."""
    rows = []
    for (acc, method), grp in per_volume.groupby(["acceleration", "method"], sort=False):
        row: dict[str, Any] = {"method": method, "acceleration": acc}
        for name in METRIC_NAMES:
            row[name] = float(grp[name].mean())
            row[f"{name}_std"] = float(grp[name].std(ddof=1)) if len(grp) > 1 else 0.0
        slices = int(grp["slices"].sum())
        row["s_per_slice"] = float(grp["seconds"].sum()) / max(1, slices)
        row["maps_s_per_slice"] = float(grp["maps_seconds"].sum()) / max(1, slices)
        row["volumes"] = len(grp)
        row["slices"] = slices
        for key in ("lamda", "crop", "tuned"):  # constant within (method, acceleration)
            if key in grp:
                row[key] = grp[key].iloc[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("acceleration", kind="stable").reset_index(drop=True) if len(out) else out


def _pm(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _param(r: pd.Series, key: str) -> str:
    value = r.get(key)
    if value is None or pd.isna(value):
        return "–"
    text = f"{float(value):g}"
    tuned = r.get("tuned")
    return text + (" (val)" if isinstance(tuned, str) and key in tuned.split("+") else "")


def table_rows(summary: pd.DataFrame, acceleration: int) -> list[list[str]]:
    rows = []
    for _, r in summary[summary["acceleration"] == acceleration].iterrows():
        rows.append(
            [
                str(r["method"]),
                _pm(r["NMSE"], r["NMSE_std"], 4),
                _pm(r["PSNR"], r["PSNR_std"], 2),
                _pm(r["SSIM"], r["SSIM_std"], 4),
                f"{r['s_per_slice']:.3f}",
                _param(r, "lamda"),
                _param(r, "crop"),
                str(int(r["volumes"])),
            ]
        )
    return rows


COLUMNS = ("method", "NMSE", "PSNR (dB)", "SSIM", "s/slice", "λ", "ESPIRiT crop", "volumes")


def tuning_note(tuned: dict[str, Any] | None) -> str:
    """One line on where λ / crop came from (and which choices lie on the edge of their grid)."""
    from .tuning import grid_edges

    if not tuned:
        return "λ / ESPIRiT crop: the functions' defaults (no validation tuning; see `--tune-on`)."
    return (
        f"λ / ESPIRiT crop marked (val): chosen per acceleration on the validation folder "
        f"`{tuned.get('validation')}` ({tuned.get('volumes_per_acceleration')} volumes, "
        f"{tuned.get('max_slices_per_volume') or 'all'} central slices each) by {tuned.get('criterion')}, "
        f"from the grid {tuned.get('grid')}; never on the evaluated data."
    ) + "".join(f" Note: {line}." for line in grid_edges(tuned))


def header_line(summary: pd.DataFrame, data: Path, truth: Path | None, machine: str) -> str:
    per_acc = summary.drop_duplicates("acceleration")
    counts = ", ".join(
        f"{int(r['acceleration'])}x: {int(r['volumes'])} volumes / {int(r['slices'])} slices"
        for _, r in per_acc.iterrows()
    )
    source = f"`{data}`" + (f" (truth `{truth}`)" if truth else "")
    return f"Data {source}; {counts}; machine: {machine}; date {datetime.date.today().isoformat()}."


def markdown(summary: pd.DataFrame, header: str, mask_type: str) -> str:
    lines = ["# Reconstruction benchmark", "", header, ""]
    lines += [
        "fastMRI protocol: per volume NMSE / PSNR / SSIM of magnitude images centre-cropped to the target, "
        "data range = target volume maximum, SSIM mean over slices; mean ± sample std over volumes. "
        f"Masks: stored in test-format files, else `{mask_type}` drawn with fastMRI's per-file seed.",
        "",
    ]
    for acc in sorted(summary["acceleration"].unique()):
        lines += [f"## {int(acc)}x", "", *markdown_table(COLUMNS, table_rows(summary, acc))]
        lines.append("")
    lines += [TIMING_NOTE, ""]
    if summary.attrs.get("tuning"):
        lines += [summary.attrs["tuning"], ""]
    if summary.attrs.get("methods"):
        lines += ["Methods:", ""]
        lines += [f"* {name}: {text}" for name, text in summary.attrs["methods"].items()]
        lines.append("")
    for note in summary.attrs.get("notes", []):
        lines.append(f"Note: {note}.")
    for err in summary.attrs.get("errors", []):
        lines.append(f"Skipped: {err}")
    return "\n".join(lines).rstrip() + "\n"


OUTPUT_NAMES = ("summary.md", "summary.csv", "per_volume.csv")


def write_outputs(summary: pd.DataFrame, out: Path, header: str, mask_type: str) -> list[Path]:
    """``out/summary.md``, ``out/summary.csv``, ``out/per_volume.csv`` (each written atomically; the
    folder is created)."""
    paths = [out / name for name in OUTPUT_NAMES]
    write_text_atomically(paths[0], markdown(summary, header, mask_type))
    write_text_atomically(paths[1], summary.to_csv(index=False, float_format="%.6g"))
    write_text_atomically(paths[2], summary.attrs["per_volume"].to_csv(index=False, float_format="%.6g"))
    return paths


def print_tables(summary: pd.DataFrame, header: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(header)
    for acc in sorted(summary["acceleration"].unique()):
        table = Table(title=f"{int(acc)}x (fastMRI protocol)")
        for col in COLUMNS:
            table.add_column(col, justify="left" if col == "method" else "right", no_wrap=col == "method")
        for row in table_rows(summary, acc):
            table.add_row(*row)
        console.print(table)
