"""λ and ESPIRiT crop of the classical baselines, chosen on a validation split (never on test data).

:func:`tune` runs every grid point of ``sense``, ``l1-wavelet`` and ``bart`` on a validation folder
through the evaluation harness (one ESPIRiT calibration per slice shared by all grid points of a
method family), scores each volume by the fastMRI protocol and keeps, per method and acceleration,
the point with the highest mean SSIM (ties: higher PSNR). The result is a small JSON file::

    {"validation": DIR, "criterion": ..., "grid": {...}, "volumes_per_acceleration": N,
     "chosen": {"sense": {"4": {"lamda": 0.003, "crop": 0.5}, "8": {...}}, ...},
     "scores": [{"method", "acceleration", "lamda", "crop", "NMSE", "PSNR", "SSIM"}, ...]}

which ``python -m mrirecon.evaluate --tuned FILE`` reads (:func:`load_tuned`, :func:`tuned_options`).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..io.files import write_text_atomically
from .methods import CLASSICAL, MethodSpec, UsageError

# the classical methods with a grid in the registry (mrirecon.evaluate.methods.CLASSICAL) and their grids
TUNABLE = tuple(name for name, method in CLASSICAL.items() if method.grid)
DEFAULT_GRID: dict[str, dict[str, list[float]]] = {
    name: {key: list(values) for key, values in CLASSICAL[name].grid.items()} for name in TUNABLE
}
CRITERION = "highest mean SSIM over validation volumes (ties: higher mean PSNR)"


def _grid_name(base: str, lamda: float, crop: float) -> str:
    return f"{base}|lamda={lamda:g}|crop={crop:g}"


def grid_specs(grid: dict[str, dict[str, list[float]]]) -> list[Any]:
    """One classical :class:`~mrirecon.evaluate.MethodSpec` per (method, λ, crop) of ``grid``."""
    unknown = set(grid) - set(TUNABLE)
    if unknown:
        raise UsageError(f"cannot tune {sorted(unknown)}: tunable methods are {', '.join(TUNABLE)}")
    return [
        MethodSpec(_grid_name(base, lam, crop), base=base, overrides={"lamda": float(lam), "crop": float(crop)})
        for base, axes in grid.items()
        for lam in axes["lamda"]
        for crop in axes["crop"]
    ]


def choose(scores: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """Grid scores (columns base, acceleration, lamda, crop, SSIM, PSNR) -> ``{base: {acc: {lamda, crop}}}``."""
    chosen: dict[str, dict[str, dict[str, float]]] = {}
    for (base, acc), grp in scores.groupby(["base", "acceleration"], sort=True):
        best = grp.sort_values(["SSIM", "PSNR"], ascending=False, kind="stable").iloc[0]
        chosen.setdefault(str(base), {})[str(int(acc))] = {"lamda": float(best["lamda"]), "crop": float(best["crop"])}
    return chosen


def tune(
    validation: str | os.PathLike,
    methods: Sequence[str] = TUNABLE,
    accelerations: Sequence[int] = (4, 8),
    mask_type: str = "equispaced_fraction",
    workers: int = 1,
    max_volumes: int | None = None,
    max_slices_per_volume: int | None = None,
    grid: dict[str, dict[str, list[float]]] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Grid-search λ and crop of ``methods`` on the ``validation`` folder -> the JSON-ready record."""
    from .run import evaluate  # imported here: run.py imports this module

    grid = {m: (grid or DEFAULT_GRID)[m] for m in methods}
    specs = grid_specs(grid)
    summary = evaluate(
        validation,
        specs,
        accelerations,
        mask_type=mask_type,
        workers=workers,
        max_volumes=max_volumes,
        max_slices_per_volume=max_slices_per_volume,
        on_error=on_error,
    )
    if summary.empty:
        first = (summary.attrs.get("errors") or ["no files"])[0]
        raise ValueError(f"{validation}: no validation volume could be reconstructed (first error: {first})")
    spec_of = {s.name: s for s in specs}
    scores = summary.assign(
        base=[spec_of[m].base for m in summary["method"]],
        lamda=[spec_of[m].overrides["lamda"] for m in summary["method"]],
        crop=[spec_of[m].overrides["crop"] for m in summary["method"]],
    )[["base", "acceleration", "lamda", "crop", "NMSE", "PSNR", "SSIM", "volumes", "slices", "s_per_slice"]]
    return {
        "validation": str(validation),
        "criterion": CRITERION,
        "mask_type": mask_type,
        "grid": grid,
        "volumes_per_acceleration": int(scores["volumes"].max()),
        "max_slices_per_volume": max_slices_per_volume,
        "date": datetime.date.today().isoformat(),
        "chosen": choose(scores),
        "scores": scores.rename(columns={"base": "method"}).to_dict(orient="records"),
        "errors": summary.attrs.get("errors", []),
    }


def save_tuned(record: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``record`` as JSON atomically."""

    path = Path(path)
    write_text_atomically(path, json.dumps(record, indent=1, default=float) + "\n")
    return path


def load_tuned(path: str | os.PathLike) -> dict[str, Any]:
    """Read a tuning JSON; a file that is not one raises :class:`~mrirecon.evaluate.UsageError`."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: cannot read the tuning file: {err}") from err
    chosen = record.get("chosen") if isinstance(record, dict) else None
    if not isinstance(chosen, dict) or "validation" not in record:
        raise UsageError(f"{path}: not a tuning file (no 'validation' and 'chosen' entries)")
    for base, per_acc in chosen.items():
        if base not in TUNABLE or not isinstance(per_acc, dict):
            raise UsageError(f"{path}: unexpected entry {base!r} in 'chosen'")
        for acc, opts in per_acc.items():
            if not isinstance(opts, dict) or set(opts) - {"lamda", "crop"}:
                raise UsageError(f"{path}: {base} at {acc}x must give only lamda and crop, got {opts!r}")
    return record


def tuned_options(tuned: dict[str, Any] | None, base: str, acceleration: int) -> dict[str, float]:
    """The validation-chosen ``{lamda, crop}`` of ``base`` at ``acceleration`` ({} when not tuned)."""
    if not tuned:
        return {}
    return dict(tuned.get("chosen", {}).get(base, {}).get(str(int(acceleration)), {}))


def grid_edges(record: dict[str, Any]) -> list[str]:
    """One line per chosen λ that lies on the edge of its grid (the optimum may lie outside)."""
    lines = []
    for base, per_acc in record.get("chosen", {}).items():
        lamdas = record.get("grid", {}).get(base, {}).get("lamda", [])
        if len(lamdas) < 2:
            continue
        for acc, opts in sorted(per_acc.items(), key=lambda kv: int(kv[0])):
            if opts.get("lamda") in (min(lamdas), max(lamdas)):
                lines.append(f"{base} at {acc}x: λ {opts['lamda']:g} is at the edge of the grid {lamdas}")
    return lines


def check_not_validation(tuned: dict[str, Any], data: str | os.PathLike) -> None:
    """Refuse to evaluate on the folder the parameters were tuned on."""
    if Path(tuned["validation"]).resolve() == Path(data).resolve():
        raise UsageError(f"{data}: λ / crop were tuned on this folder; evaluate on a different split")
