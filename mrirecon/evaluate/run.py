"""Running: every method on every case of a folder, classical methods one slice per task in a process
pool, learned ones batched after one untimed warm-up."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io.batch import describe_failure
from ..metrics import METRIC_NAMES, volume_metrics
from .cases import Case, find_files, load_cases
from .methods import (
    CLASSICAL,
    ClassicalTask,
    MethodSpec,
    UsageError,
    classical_slice,
    describe,
    load_learned,
    parse_method,
    resolved_options,
)
from .report import summarize_frame, tuning_note


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


def _spawn() -> Any:
    import multiprocessing

    return multiprocessing.get_context("spawn")  # no fork of a process that has torch threads running


def describe_machine(device: str | None) -> str:
    """The CPU (cores) and, on CUDA, the GPU: the machine line of the tables."""
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
    split (:func:`mrirecon.evaluate.tuning.load_tuned`), applied per acceleration under explicit overrides.
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
    learned = {s.name: load_learned(s, device) for s in specs if not s.is_classical}
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
            except Exception as err:  # e.g. ESPIRiT without ACS, a net that cannot take the shape: never stop the run
                if isinstance(err, UsageError) or on_error is None:
                    raise
                on_error(describe_failure(path, err))
        if progress is not None:
            progress("file", len(files), len(files))
    finally:
        pool.shutdown(cancel_futures=True)


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
    calibration_seconds: dict[str, float] = {}  # per calibration, summed over the slices
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
        for calibration in {CLASSICAL[base].calibration for _, base, _ in classical} - {None}:
            calibration_seconds[calibration] = sum(r[1].get(calibration, 0.0) for r in results)
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
            calibration_seconds.get(CLASSICAL[s.base].calibration, 0.0) if s.is_classical else 0.0,
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
