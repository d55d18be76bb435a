"""Methods: the ``[NAME=]TARGET[:key=value,...]`` specs, the registry of classical baselines, and the
classical methods run on one slice.

A classical baseline is ONE entry of :data:`CLASSICAL`: the function of :mod:`mrirecon.baselines` it runs,
the coil-map calibration it shares with the others on a slice (if any) and, for tunable methods, the grid
of λ / ESPIRiT crop that ``--tune-on`` searches. The spec parser, the per-slice runner, the method
descriptions and :mod:`mrirecon.evaluate.tuning` all read it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cli.options import parse_options


class UsageError(ValueError):
    """A bad method specification, checkpoint or folder (exit code 2)."""


@dataclass(frozen=True)
class Classical:
    """A classical baseline: ``function`` of :mod:`mrirecon.baselines`, called per slice as
    ``function(kspace [C,H,W])`` without ``calibration``, else
    ``function(kspace, mask, num_low_frequencies, **options, maps=...)`` with the maps of ``calibration``
    (a key of :data:`CALIBRATIONS`, computed once per slice for every method that names it).
    ``grid``: λ / crop values searched by ``--tune-on`` (empty: not tunable)."""

    function: str
    calibration: str | None = None
    grid: dict[str, tuple[float, ...]] = field(default_factory=dict)
    note: Callable[[], str] | None = None  # extra words for the method description


def _bart_version() -> str:
    import subprocess

    from ..baselines import bart_available

    exe = bart_available()
    if exe is None:
        return "bart not installed"
    out = subprocess.run([exe, "version"], capture_output=True, text=True).stdout.strip()
    return f"BART {out}" if out else "BART"


CLASSICAL: dict[str, Classical] = {
    "zero-filled": Classical("zero_filled"),
    "sense": Classical(
        "sense",
        "espirit",
        {"lamda": (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1), "crop": (0.0, 0.5, 0.8, 0.9, 0.95)},
    ),
    "l1-wavelet": Classical(
        "l1_wavelet", "espirit", {"lamda": (0.0001, 0.0003, 0.001, 0.003, 0.01), "crop": (0.0, 0.8)}
    ),
    "bart": Classical(
        "bart_pics",
        "bart",
        {"lamda": (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1), "crop": (0.0, 0.8)},
        note=lambda: f"(`bart ecalib -m1` + `bart pics -R W:7:0:λ`, {_bart_version()})",
    ),
}
CLASSICAL_METHODS = tuple(CLASSICAL)
SIGPY_METHODS = tuple(n for n, m in CLASSICAL.items() if m.calibration == "espirit")  # one sigpy ESPIRiT per slice


def _function(name: str) -> Callable[..., Any]:
    from .. import baselines

    return getattr(baselines, CLASSICAL[name].function)


# ----------------------------------------------------------------------------------------------
# specs


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
    """Parse ``[NAME=]TARGET[:key=value,...]``; TARGET is a key of :data:`CLASSICAL` (``zero-filled``,
    ``sense``, ``l1-wavelet``, ``bart``) or a codec folder (a folder named like a classical method must be
    written ``./sense``).

    ``sense``, ``sense:crop=0`` (named so), ``ours=runs/tiny/codec``, ``ours-off=codecs/default:trigger=off``,
    ``ours-tta=codecs/default:tta_steps=10,tta_params=trigger+heads``.
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
    if target in CLASSICAL:
        if CLASSICAL[target].calibration is None and overrides:
            raise UsageError(f"method {spec!r}: {target} takes no options")
        if "maps" in overrides:
            raise UsageError(f"method {spec!r}: maps are computed by the harness")
        return MethodSpec(name, base=target, overrides=overrides)
    if not eq:
        raise UsageError(
            f"method {spec!r}: not one of {', '.join(CLASSICAL_METHODS)}; give a learned method as NAME=CODEC_DIR"
        )
    return MethodSpec(name, checkpoint=Path(target), overrides=overrides)


def resolved_options(base: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The ``lamda`` and ``crop`` a classical method runs with: its function defaults, then ``overrides``."""
    import inspect

    if CLASSICAL[base].calibration is None:
        return dict(overrides)
    params = inspect.signature(_function(base)).parameters
    return {**{k: params[k].default for k in ("lamda", "crop")}, **overrides}


# ----------------------------------------------------------------------------------------------
# calibrations shared by the classical methods of one slice


def shared_espirit(
    kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int, crops: Sequence[float]
) -> dict[float, np.ndarray]:
    """ESPIRiT maps of one slice for several crops from ONE calibration: ``{crop: maps [C,H,W]}``.

    Reproduces what :func:`mrirecon.baselines.sense` / ``l1_wavelet`` compute when ``maps`` is None
    (k-space scaled to unit zero-filled maximum, ``espirit_maps``' calibration width and kernel), but
    reads the eigenvalue map once and applies each crop to it.
    """
    from ..baselines import zero_filled
    from ..physics.espirit import espirit_calibration

    k = (kspace * mask[None, None, :]).astype(np.complex64)
    scale = float(zero_filled(k).max())
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    k = (k / scale).astype(np.complex64)
    mps, eig = espirit_calibration(k, num_low_frequencies)
    return {crop: (mps * (eig > crop)).astype(np.complex64) for crop in set(crops)}


def _bart_maps(kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int, crops: Sequence[float]) -> dict:
    """``bart ecalib`` once: the same maps and eigenvalues for every crop (``bart_pics`` applies the crop)."""
    from ..baselines import bart_espirit

    maps = bart_espirit(kspace, mask, num_low_frequencies)
    return dict.fromkeys(crops, maps)


# name -> (kspace [C,H,W], mask [W], num_low_frequencies, crops) -> {crop: the maps argument of the method}
CALIBRATIONS: dict[str, Callable[..., dict]] = {"espirit": shared_espirit, "bart": _bart_maps}

ClassicalTask = tuple[str, str, dict[str, Any]]  # (name, base method, keyword overrides)


def classical_slice(
    kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int, tasks: Sequence[ClassicalTask]
) -> tuple[dict[str, np.ndarray], dict[str, float], list[str]]:
    """Run classical methods on one masked slice [C,H,W] -> (images [H,W], seconds, warnings).

    Each calibration runs once (``seconds[<calibration>]``, e.g. ``seconds["espirit"]``) and its time is
    included in the seconds of every method that uses it.
    """
    crops = {name: resolved_options(base, opts).get("crop") for name, base, opts in tasks}
    images: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps: dict[str, dict] = {}
        for calibration, calibrate in CALIBRATIONS.items():
            users = [name for name, base, _ in tasks if CLASSICAL[base].calibration == calibration]
            if users:
                t0 = time.perf_counter()
                maps[calibration] = calibrate(kspace, mask, num_low_frequencies, [crops[n] for n in users])
                seconds[calibration] = time.perf_counter() - t0
        for name, base, opts in tasks:
            calibration = CLASSICAL[base].calibration
            t0 = time.perf_counter()
            if calibration is None:
                images[name] = _function(base)(kspace)
                seconds[name] = time.perf_counter() - t0
            else:
                m = maps[calibration][crops[name]]
                images[name] = _function(base)(kspace, mask, num_low_frequencies, **opts, maps=m)
                seconds[name] = time.perf_counter() - t0 + seconds[calibration]
    return images, seconds, sorted({str(w.message) for w in caught})


# ----------------------------------------------------------------------------------------------
# learned methods and descriptions


def load_learned(spec: MethodSpec, device: str | None) -> Any:
    """The :class:`~mrirecon.api.Reconstructor` of a codec spec (overrides as init args / ``tta_*``)."""
    from ..api import Reconstructor

    try:
        return Reconstructor.from_checkpoint(spec.checkpoint, device=device, **spec.overrides)
    except (FileNotFoundError, ValueError, TypeError) as err:
        raise UsageError(f"method {spec.name}: cannot load {spec.checkpoint}: {err}") from err


def describe(spec: MethodSpec, rec: Any = None, tuned: dict[str, Any] | None = None) -> str:
    """One line on a method: the function or codec, its options, and (codecs) size and training budget."""
    opts = ", ".join(f"{k}={v}" for k, v in spec.overrides.items())
    if spec.is_classical:
        entry = CLASSICAL[spec.base]
        line = f"`mrirecon.baselines.{entry.function}`"
        if entry.note is not None:
            line += f" {entry.note()}"
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
