"""One evaluation harness for every method: classical baselines, learned baselines and ours.

    python -m mrirecon.evaluate --data DIR [--truth DIR] [--accelerations 4 8]
        [--mask-type equispaced_fraction] --method NAME[=CHECKPOINT_DIR[:key=value,...]] ...
        [--tune-on VALDIR] [--tuned FILE] [--workers N] [--device cpu|cuda] [--max-volumes K]
        [--max-slices-per-volume K] [--out results/NAME]

``--data`` holds fully sampled files (a mask is drawn per file and acceleration with fastMRI's
per-file seed, so every method sees the same mask) and/or fastMRI test-format files (their stored
mask and ``acceleration`` attribute are used; ground truth ``reconstruction_rss`` is read from the
file of the same name in ``--truth``). Methods: ``zero-filled``, ``sense``, ``l1-wavelet`` (sigpy; ESPIRiT
maps computed once per slice and shared by SENSE and L1-wavelet), ``bart`` (the ``bart`` program:
``ecalib`` + l1-wavelet ``pics``; slices run in a process pool) and learned codec folders ``name=path``
(ours, U-Net, E2E-VarNet), optionally with init-arg overrides,
e.g. ``ours-off=codecs/default:trigger=off``; classical methods take options the same way
(``sense-crop0=sense:crop=0``). ``--tune-on VALDIR`` grid-searches λ and the ESPIRiT crop of ``sense``,
``l1-wavelet`` and ``bart`` per acceleration on a validation folder and writes them to ``--tuned FILE``;
``--tuned FILE`` alone reads them (:mod:`mrirecon.tuning`); the tables print the λ and crop used.
Scores follow fastMRI (``mrirecon.metrics``). Writes
into the folder ``OUT``: ``summary.md`` (a table per acceleration), ``summary.csv`` (method x
acceleration) and ``per_volume.csv`` (and ``tuned.json`` from ``--tune-on``); one progress line per file
when the output is not a terminal. A bad input file is reported in one line and skipped; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .cli.options import parse_options
from .data import (
    InvalidInputError,
    Volume,
    file_mask,
    read_target,
)
from .data.transforms import center_run_length
from .io import read_volume
from .io.files import write_text_atomically
from .io.markdown import markdown_table
from .metrics import METRIC_NAMES, center_crop_to, volume_metrics
from .progress import Progress

CLASSICAL_METHODS = ("zero-filled", "sense", "l1-wavelet", "bart")
SIGPY_METHODS = ("sense", "l1-wavelet")  # share one sigpy ESPIRiT calibration per slice
TIMING_NOTE = (
    "s/slice: wall time of the method's reconstruction only (data loading and scoring excluded). "
    "Classical methods run one slice per worker process (1 thread each); SENSE and L1-wavelet include "
    "the ESPIRiT calibration, computed once per slice and shared (its share: `maps_s_per_slice` in the CSV); "
    "BART includes `bart ecalib`, its file writes and process starts. "
    "Learned methods: batched forward passes after one untimed warm-up."
)


class UsageError(ValueError):
    """A bad method specification, checkpoint or folder (exit code 2)."""


# ----------------------------------------------------------------------------------------------
# methods


@dataclass(frozen=True)
class MethodSpec:
    """A method to evaluate: a classical method (``base``) or a codec folder (``checkpoint``), with
    keyword overrides (classical: function arguments such as ``crop``/``lamda``; learned: init args)."""

    name: str
    base: str | None = None
    checkpoint: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def is_classical(self) -> bool:
        return self.base is not None


def parse_method(spec: str) -> MethodSpec:
    """Parse ``[NAME=]TARGET[:key=value,...]``; TARGET is ``zero-filled``, ``sense``, ``l1-wavelet`` or a
    codec folder (a folder named like a classical method must be written ``./sense``).

    ``sense``, ``sense:crop=0`` (named so), ``ours=runs/tiny/codec``, ``ours-off=codecs/default:trigger=off``.
    """
    name, eq, rest = spec.partition("=")
    if not eq or ":" in name:  # no NAME=: the whole spec names the method
        name, eq, rest = spec, "", spec
    name, (target, _, opts) = name.strip(), rest.partition(":")
    if not name or not target:
        raise UsageError(f"method {spec!r}: give NAME=CODEC_DIR or one of {', '.join(CLASSICAL_METHODS)}")
    try:
        overrides = parse_options(opts.split(","), f"method {spec!r}: override")
    except ValueError as err:
        raise UsageError(str(err)) from None
    if target in CLASSICAL_METHODS:
        if target == "zero-filled" and overrides:
            raise UsageError(f"method {spec!r}: zero-filled takes no options")
        if "maps" in overrides:
            raise UsageError(f"method {spec!r}: maps are computed by the harness")
        return MethodSpec(name, base=target, overrides=overrides)
    if not eq:
        raise UsageError(
            f"method {spec!r}: not one of {', '.join(CLASSICAL_METHODS)}; give a learned method as NAME=CODEC_DIR"
        )
    return MethodSpec(name, checkpoint=Path(target), overrides=overrides)


# ----------------------------------------------------------------------------------------------
# cases: one (volume, acceleration) with its mask and target


@dataclass
class Case:
    """One volume at one acceleration: masked k-space [S,C,H,W], mask [W], target [S,h,w]."""

    fname: str
    acceleration: int
    masked: np.ndarray
    mask: np.ndarray
    num_low_frequencies: int
    target: np.ndarray

    @property
    def num_slices(self) -> int:
        return self.masked.shape[0]


def find_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.h5") if not p.name.startswith("."))


def _slice_range(n: int, k: int | None) -> slice:
    """The central ``k`` of ``n`` slices (all when k is None)."""
    if k is None or k >= n:
        return slice(0, n)
    start = (n - k) // 2
    return slice(start, start + k)


def _full_target(volume: Volume) -> np.ndarray:
    if volume.target is not None:
        return volume.target
    from .baselines import zero_filled  # RSS of fully sampled k-space is the fastMRI target

    rss = np.stack([zero_filled(k) for k in volume.kspace])
    return np.ascontiguousarray(center_crop_to(rss, volume.crop_size))


def load_cases(
    path: Path,
    truth: Path | None,
    accelerations: Sequence[int],
    mask_type: str,
    max_slices: int | None,
) -> list[Case]:
    """Read one file -> its cases (one per acceleration for fully sampled files, one or none for
    test-format files). Raises :class:`InvalidInputError` for a bad file or missing ground truth."""
    volume = read_volume(path)
    sl = _slice_range(volume.kspace.shape[0], max_slices)
    if volume.mask is not None:  # test format: stored mask, acceleration attribute, separate truth
        acc = volume.attrs.get("acceleration")
        acc = int(acc) if acc is not None else int(round(volume.mask.size / max(1, volume.mask.sum())))
        if acc not in accelerations:
            return []
        if volume.target is not None:
            target = volume.target
        else:
            if truth is None:
                raise UsageError(f"{path} is a test-format file: give its ground-truth folder with --truth")
            tpath = truth / path.name
            if not tpath.is_file():
                raise InvalidInputError(tpath, f"missing ground truth for test-format file {path}")
            target, _ = read_target(tpath, "reconstruction_rss")
            w = target.shape[-1]  # fastmri.evaluate crops the target to (min(h, w), w)
            target = np.ascontiguousarray(center_crop_to(target, (min(target.shape[-2], w), w)))
            if target.shape[0] != volume.kspace.shape[0]:
                raise InvalidInputError(
                    tpath, f"{target.shape[0]} target slices, but {path} has {volume.kspace.shape[0]}"
                )
        mask = volume.mask.astype(bool)
        nlf = int(volume.num_low_frequencies or center_run_length(mask))
        masked = (volume.kspace[sl] * mask).astype(np.complex64)
        return [Case(path.name, acc, masked, mask, nlf, np.ascontiguousarray(target[sl]))]
    target = _full_target(volume)[sl]
    kspace = volume.kspace[sl]
    cases = []
    for acc in accelerations:  # the same draw as Reconstructor.prepare: fastMRI's per-file seed
        mask, nlf = file_mask(volume.fname, kspace.shape[-1], mask_type, acc)
        cases.append(Case(path.name, int(acc), (kspace * mask).astype(np.complex64), mask, int(nlf), target))
    return cases


# ----------------------------------------------------------------------------------------------
# classical methods, one slice per task


def shared_espirit(
    kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int, crops: Sequence[float]
) -> dict[float, np.ndarray]:
    """ESPIRiT maps of one slice for several crops from ONE calibration: ``{crop: maps [C,H,W]}``.

    Reproduces what :func:`mrirecon.baselines.sense` / ``l1_wavelet`` compute when ``maps`` is None
    (k-space scaled to unit zero-filled maximum, ``espirit_maps``' calibration width and kernel), but
    reads the eigenvalue map once and applies each crop to it.
    """
    import sigpy as sp
    import sigpy.mri

    from .baselines import zero_filled
    from .baselines.classical import _calib_width

    k = (kspace * mask[None, None, :]).astype(np.complex64)
    scale = float(zero_filled(k).max())
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    k = (k / scale).astype(np.complex64)
    calib_width = _calib_width(k, int(num_low_frequencies))
    if calib_width < 3:
        raise ValueError(f"ESPIRiT needs a fully sampled centre of >= 3 columns, got {calib_width}")
    if calib_width < 8:
        warnings.warn(f"ESPIRiT calibration from only {calib_width} ACS columns: maps will be poor", stacklevel=2)
    app = sigpy.mri.app.EspiritCalib(
        k,
        calib_width=calib_width,
        thresh=0.02,
        kernel_width=int(max(2, min(6, calib_width // 2))),
        crop=0.0,
        max_iter=30,
        device=sp.cpu_device,
        output_eigenvalue=True,
        show_pbar=False,
    )
    mps, eig = app.run()
    mps, eig = np.asarray(mps).astype(np.complex64, copy=False), np.asarray(eig)
    return {crop: (mps * (eig > crop)).astype(np.complex64) for crop in set(crops)}


ClassicalTask = tuple[str, str, dict[str, Any]]  # (name, base method, keyword overrides)


def classical_slice(
    kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int, tasks: Sequence[ClassicalTask]
) -> tuple[dict[str, np.ndarray], dict[str, float], list[str]]:
    """Run classical methods on one masked slice [C,H,W] -> (images [H,W], seconds, warnings).

    ESPIRiT runs once (``seconds["maps"]``) and its time is included in every SENSE / L1-wavelet entry.
    """
    from .baselines import bart_espirit, bart_pics, l1_wavelet, sense, zero_filled

    functions = {"sense": sense, "l1-wavelet": l1_wavelet}
    crops = {name: resolved_options(base, opts).get("crop") for name, base, opts in tasks}
    images: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps: dict[float, np.ndarray] = {}
        if any(base in SIGPY_METHODS for _, base, _ in tasks):
            t0 = time.perf_counter()
            maps = shared_espirit(
                kspace, mask, num_low_frequencies, [crops[n] for n, b, _ in tasks if b in SIGPY_METHODS]
            )
            seconds["maps"] = time.perf_counter() - t0
        if any(base == "bart" for _, base, _ in tasks):
            t0 = time.perf_counter()
            bart_maps = bart_espirit(kspace, mask, num_low_frequencies)
            seconds["bart_maps"] = time.perf_counter() - t0
        for name, base, opts in tasks:
            t0 = time.perf_counter()
            if base == "zero-filled":
                images[name] = zero_filled(kspace)
                seconds[name] = time.perf_counter() - t0
            elif base == "bart":
                images[name] = bart_pics(kspace, mask, num_low_frequencies, **opts, maps=bart_maps)
                seconds[name] = time.perf_counter() - t0 + seconds["bart_maps"]
            else:
                images[name] = functions[base](kspace, mask, num_low_frequencies, **opts, maps=maps[crops[name]])
                seconds[name] = time.perf_counter() - t0 + seconds["maps"]
    return images, seconds, sorted({str(w.message) for w in caught})


def resolved_options(base: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The ``lamda`` and ``crop`` a classical method runs with: its function defaults, then ``overrides``."""
    import inspect

    from .baselines import bart_pics, l1_wavelet, sense

    fn = {"sense": sense, "l1-wavelet": l1_wavelet, "bart": bart_pics}.get(base)
    if fn is None:
        return dict(overrides)
    params = inspect.signature(fn).parameters
    return {**{k: params[k].default for k in ("lamda", "crop")}, **overrides}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


class _InlineExecutor(Executor):
    """Runs tasks in the calling process (``--workers 1``)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any):
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(err)
        return future


# ----------------------------------------------------------------------------------------------
# the harness


def _machine(device: str | None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu} ({os.cpu_count()} cores)"
    if device and device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            desc += f", {torch.cuda.get_device_name(torch.device(device))}"
    return desc


def _load_learned(spec: MethodSpec, device: str | None) -> Any:
    from .api import Reconstructor

    try:
        return Reconstructor.from_checkpoint(spec.checkpoint, device=device, **spec.overrides)
    except (FileNotFoundError, ValueError, TypeError) as err:
        raise UsageError(f"method {spec.name}: cannot load {spec.checkpoint}: {err}") from err


def describe(spec: MethodSpec, rec: Any = None, tuned: dict[str, Any] | None = None) -> str:
    """One line on a method: the function or codec, its options, and (codecs) size and training budget."""
    opts = ", ".join(f"{k}={v}" for k, v in spec.overrides.items())
    if spec.is_classical:
        fn = {"zero-filled": "zero_filled", "sense": "sense", "l1-wavelet": "l1_wavelet", "bart": "bart_pics"}[
            spec.base
        ]
        line = f"`mrirecon.baselines.{fn}`"
        if spec.base == "bart":
            line += f" (`bart ecalib -m1` + `bart pics -R W:7:0:λ`, {_bart_version()})"
        line += f" with {opts}" if opts else " (defaults)"
        if tuned and spec.base in tuned.get("chosen", {}):
            line += "; λ / crop not set here: chosen per acceleration on validation (see the table)"
        return line
    card = rec.card
    params = sum(p.numel() for p in rec.net.parameters() if p.requires_grad) / 1e6
    line = f"`{spec.checkpoint}`: {card.get('net', {}).get('class_path')}, {params:.2f} M trainable parameters"
    train = card.get("training") or {}
    if train:
        line += (
            f"; trained {train.get('epochs')} epochs / {train.get('steps')} steps in {train.get('seconds')} s "
            f"on {train.get('device')}"
        )
    return line + (f"; overrides {opts}" if opts else "")


def _bart_version() -> str:
    import subprocess

    from .baselines import bart_available

    exe = bart_available()
    if exe is None:
        return "bart not installed"
    out = subprocess.run([exe, "version"], capture_output=True, text=True).stdout.strip()
    return f"BART {out}" if out else "BART"


def _per_volume_row(
    method: str, case: Case, image: np.ndarray, seconds: float, maps_seconds: float, params: dict[str, Any]
) -> dict:
    metrics = volume_metrics(case.target, image)
    return {
        "method": method,
        "acceleration": case.acceleration,
        "volume": case.fname,
        "slices": case.num_slices,
        **metrics,
        "seconds": seconds,
        "maps_seconds": maps_seconds,
        "lamda": params.get("lamda", np.nan),
        "crop": params.get("crop", np.nan),
        "tuned": params.get("tuned", ""),
    }


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


def iter_results(
    data: str | os.PathLike,
    methods: Sequence[str | MethodSpec],
    accelerations: Sequence[int] = (4, 8),
    truth: str | os.PathLike | None = None,
    mask_type: str = "equispaced_fraction",
    workers: int = 1,
    device: str | None = None,
    max_volumes: int | None = None,
    max_slices_per_volume: int | None = None,
    batch_size: int = 4,
    on_error: Callable[[str], None] | None = None,
    notes: set[str] | None = None,
    described: dict[str, str] | None = None,
    tuned: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one per-volume row per (file, acceleration, method); bad files go to ``on_error``
    (default: raise), solver warnings to ``notes``, one line per method to ``described``.
    ``max_volumes`` counts files per acceleration. ``tuned``: parameters chosen on a validation
    split (:func:`mrirecon.tuning.load_tuned`), applied per acceleration under explicit overrides.
    ``progress("file", done, total)`` after every file."""
    data = Path(data)
    truth = Path(truth) if truth is not None else None
    if not data.is_dir():
        raise UsageError(f"{data}: not a folder")
    if truth is not None and not truth.is_dir():
        raise UsageError(f"{truth}: not a folder")
    specs = [m if isinstance(m, MethodSpec) else parse_method(m) for m in methods]
    names = [s.name for s in specs]
    if not specs or len(set(names)) != len(names):
        raise UsageError(f"give each method once, got {names}")
    accelerations = [int(a) for a in accelerations]
    files = find_files(data)
    if not files:
        raise UsageError(f"{data}: no .h5 files")
    if tuned is not None:
        from .tuning import check_not_validation

        check_not_validation(tuned, data)
    learned = {s.name: _load_learned(s, device) for s in specs if not s.is_classical}
    if described is not None:
        described.update({s.name: describe(s, learned.get(s.name), tuned) for s in specs})
    classical = [(s.name, s.base, s.overrides) for s in specs if s.is_classical]
    heavy = [t for t in classical if t[1] != "zero-filled"]
    pool: Executor = _InlineExecutor()
    if workers > 1 and heavy:
        pool = ProcessPoolExecutor(workers, initializer=_worker_init, mp_context=_spawn())
    counts = dict.fromkeys(accelerations, 0)
    warmed: set[str] = set()
    try:
        for number, path in enumerate(files, 1):
            if max_volumes is not None and all(n >= max_volumes for n in counts.values()):
                break
            if progress is not None and number > 1:
                progress("file", number - 1, len(files))
            try:
                cases = load_cases(path, truth, accelerations, mask_type, max_slices_per_volume)
                cases = [c for c in cases if max_volumes is None or counts[c.acceleration] < max_volumes]
                for case in cases:
                    rows = _run_case(case, specs, classical, learned, pool, warmed, batch_size, notes, tuned)
                    counts[case.acceleration] += 1
                    yield from rows
            except (InvalidInputError, OSError) as err:
                msg = str(err) if str(path) in str(err) else f"{path}: {err}"
                if on_error is None:
                    raise
                on_error(msg)
            except Exception as err:  # e.g. ESPIRiT without ACS, a net that cannot take the shape: never stop the run
                if isinstance(err, UsageError) or on_error is None:
                    raise
                on_error(f"{path}: {type(err).__name__}: {err}")
        if progress is not None:
            progress("file", len(files), len(files))
    finally:
        pool.shutdown(cancel_futures=True)


def _spawn() -> Any:
    import multiprocessing

    return multiprocessing.get_context("spawn")  # no fork of a process that has torch threads running


def _run_case(
    case: Case,
    specs: list[MethodSpec],
    classical: list[ClassicalTask],
    learned: dict[str, Any],
    pool: Executor,
    warmed: set[str],
    batch_size: int,
    notes: set[str] | None = None,
    tuned: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """All methods on one case; rows only when every method succeeded (identical volume sets)."""
    from .tuning import tuned_options

    images: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    maps_seconds = {"sense": 0.0, "l1-wavelet": 0.0, "bart": 0.0}
    params: dict[str, dict[str, Any]] = {}
    for name, base, opts in classical:
        chosen = tuned_options(tuned, base, case.acceleration)
        from_val = "+".join(k for k in ("lamda", "crop") if k in chosen and k not in opts)
        params[name] = {**resolved_options(base, {**chosen, **opts}), "tuned": from_val}
    classical = [
        (name, base, {**tuned_options(tuned, base, case.acceleration), **opts}) for name, base, opts in classical
    ]
    if classical:
        futures = [
            pool.submit(classical_slice, case.masked[s], case.mask, case.num_low_frequencies, classical)
            for s in range(case.num_slices)
        ]
        results = [f.result() for f in futures]
        for name, _, _ in classical:
            images[name] = np.stack([r[0][name] for r in results])
            seconds[name] = sum(r[1][name] for r in results)
        maps_seconds["sense"] = maps_seconds["l1-wavelet"] = sum(r[1].get("maps", 0.0) for r in results)
        maps_seconds["bart"] = sum(r[1].get("bart_maps", 0.0) for r in results)
        for r in results:
            if notes is not None:
                notes.update(r[2])
    for name, rec in learned.items():
        if name not in warmed:  # first call: allocator, FFT plans, cuDNN autotune
            rec.reconstruct_kspace(
                case.masked[:1], case.mask, case.num_low_frequencies, batch_size=1, crop_height=case.target.shape[-2]
            )
            warmed.add(name)
        t0 = time.perf_counter()
        images[name] = rec.reconstruct_kspace(
            case.masked, case.mask, case.num_low_frequencies, batch_size=batch_size, crop_height=case.target.shape[-2]
        )
        seconds[name] = time.perf_counter() - t0
    return [
        _per_volume_row(
            s.name,
            case,
            images[s.name],
            seconds[s.name],
            maps_seconds.get(s.base or "", 0.0),
            params.get(s.name, {}),
        )
        for s in specs
    ]


def evaluate(
    data: str | os.PathLike,
    methods: Sequence[str | MethodSpec],
    accelerations: Sequence[int] = (4, 8),
    truth: str | os.PathLike | None = None,
    mask_type: str = "equispaced_fraction",
    workers: int = 1,
    device: str | None = None,
    max_volumes: int | None = None,
    max_slices_per_volume: int | None = None,
    batch_size: int = 4,
    on_error: Callable[[str], None] | None = None,
    tuned: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> pd.DataFrame:
    """Evaluate ``methods`` on every volume of ``data`` -> one row per (method, acceleration).

    Columns: method, acceleration, NMSE, PSNR, SSIM (means over volumes, fastMRI protocol) and their
    ``_std``, ``s_per_slice``, ``maps_s_per_slice``, volumes, slices, ``lamda`` / ``crop`` (classical
    methods; NaN otherwise) and ``tuned`` (those chosen on a validation split: ``lamda+crop``). ``df.attrs`` holds
    ``per_volume`` (a DataFrame), ``errors`` (one line per skipped file) and ``notes``.
    Methods as in :func:`parse_method`, e.g. ``["zero-filled", "sense", "ours=runs/tiny/codec"]``.
    ``progress("file", done, total)`` after every file.
    """
    errors: list[str] = []

    def collect(msg: str) -> None:
        errors.append(msg)
        if on_error is not None:
            on_error(msg)

    notes: set[str] = set()
    described: dict[str, str] = {}
    per_volume = pd.DataFrame(
        iter_results(
            data,
            methods,
            accelerations,
            truth,
            mask_type,
            workers,
            device,
            max_volumes,
            max_slices_per_volume,
            batch_size,
            on_error=collect,
            notes=notes,
            described=described,
            tuned=tuned,
            progress=progress,
        ),
        columns=[
            "method",
            "acceleration",
            "volume",
            "slices",
            *METRIC_NAMES,
            "seconds",
            "maps_seconds",
            "lamda",
            "crop",
            "tuned",
        ],
    )
    summary = summarize_frame(per_volume)
    summary.attrs = {
        "per_volume": per_volume,
        "errors": errors,
        "notes": sorted(notes),
        "methods": described,
        "tuning": tuning_note(tuned),
    }
    return summary


# ----------------------------------------------------------------------------------------------
# output


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mrirecon.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="folder of fully sampled or test-format files")
    parser.add_argument("--truth", type=Path, default=None, help="ground-truth folder for test-format files")
    parser.add_argument("--accelerations", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--mask-type", default="equispaced_fraction", help="for fully sampled files")
    parser.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME[=DIR[:k=v,...]]",
        help="zero-filled, sense, l1-wavelet, bart (options: s0=sense:crop=0,lamda=0.01) or NAME=CODEC_DIR with "
        "optional init-arg overrides (ours-off=DIR:trigger=off); repeat for each method",
    )
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes for classical")
    parser.add_argument("--device", default=None, help="cpu or cuda for learned methods (default: cuda if available)")
    parser.add_argument("--max-volumes", type=int, default=None, help="files per acceleration (name order)")
    parser.add_argument("--max-slices-per-volume", type=int, default=None, help="the central K slices")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per forward pass (learned methods)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/evaluation"),
        help="output folder: summary.md, summary.csv, per_volume.csv (and tuned.json with --tune-on)",
    )
    parser.add_argument(
        "--tune-on",
        type=Path,
        default=None,
        metavar="VALDIR",
        help="first choose λ / ESPIRiT crop of the sense, l1-wavelet and bart methods per acceleration on this "
        "validation folder (grid search) and write them to --tuned",
    )
    parser.add_argument(
        "--tuned",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON of validation-chosen λ / crop (read; written by --tune-on, default OUT/tuned.json)",
    )
    parser.add_argument("--tune-max-volumes", type=int, default=None, help="validation files per acceleration")
    parser.add_argument("--tune-max-slices", type=int, default=None, help="central validation slices per file")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file; --out names a folder (it was a file prefix before)", file=sys.stderr)
        return 2

    def report(msg: str) -> None:
        print(f"SKIPPED {msg}", file=sys.stderr)

    try:
        tuned = _tuned_for(args, report)
        summary = evaluate(
            args.data,
            args.method,
            args.accelerations,
            truth=args.truth,
            mask_type=args.mask_type,
            workers=args.workers,
            device=args.device,
            max_volumes=args.max_volumes,
            max_slices_per_volume=args.max_slices_per_volume,
            batch_size=args.batch_size,
            on_error=report,
            tuned=tuned,
            progress=Progress("evaluate"),
        )
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    errors = summary.attrs["errors"]
    if summary.empty:
        print(f"error: nothing evaluated in {args.data} ({len(errors)} files skipped)", file=sys.stderr)
        return 1 if errors else 2
    device = args.device or ("cuda" if _cuda() else "cpu")
    header = header_line(summary, args.data, args.truth, _machine(device))
    print_tables(summary, header)
    for note in summary.attrs["notes"]:
        print(f"note: {note}", file=sys.stderr)
    paths = write_outputs(summary, args.out, header, args.mask_type)
    print("wrote " + ", ".join(map(str, paths)))
    return 1 if errors else 0


def _tuned_for(args: argparse.Namespace, report: Callable[[str], None]) -> dict[str, Any] | None:
    """Run ``--tune-on`` (writing ``--tuned``) or read ``--tuned``; None when neither is given."""
    from .tuning import TUNABLE, check_not_validation, load_tuned, save_tuned, tune

    if args.tune_on is None:
        return load_tuned(args.tuned) if args.tuned is not None else None
    if not args.tune_on.is_dir():
        raise UsageError(f"{args.tune_on}: not a folder")
    bases = sorted({s.base for s in map(parse_method, args.method) if s.base in TUNABLE}, key=TUNABLE.index)
    if not bases:
        raise UsageError("--tune-on: none of the methods is tunable (sense, l1-wavelet, bart)")
    check_not_validation({"validation": str(args.tune_on)}, args.data)
    record = tune(
        args.tune_on,
        bases,
        args.accelerations,
        mask_type=args.mask_type,
        workers=args.workers,
        max_volumes=args.tune_max_volumes,
        max_slices_per_volume=args.tune_max_slices,
        on_error=report,
    )
    path = save_tuned(record, args.tuned or args.out / "tuned.json")
    print(f"tuned on {args.tune_on}: {json.dumps(record['chosen'])} -> {path}")
    return record


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
