"""fastMRI's evaluation protocol (``fastmri.evaluate``), per volume, averaged over volumes.

Magnitude images [S,h,w]; predictions are centre-cropped to the target; the data range is the
target volume's maximum; SSIM is the mean over slices; NMSE over the whole volume.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastmri import evaluate as fm_eval
from fastmri.data.transforms import center_crop

from mrirecon.data.validate import InvalidInputError
from mrirecon.data.volume import read_target

METRIC_NAMES = ("NMSE", "PSNR", "SSIM")


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x)


def _check(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.ndim != 3:
        raise ValueError(f"expected volumes [S,h,w], got target shape {gt.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"prediction shape {pred.shape} != target shape {gt.shape} (crop it with center_crop_to)")


def nmse(gt: Any, pred: Any) -> float:
    """||gt - pred||^2 / ||gt||^2 over the volume [S,h,w]."""
    gt, pred = _np(gt), _np(pred)
    _check(gt, pred)
    return float(fm_eval.nmse(gt, pred))


def psnr(gt: Any, pred: Any, maxval: float | None = None) -> float:
    """PSNR in dB over the volume [S,h,w]; data range ``maxval`` (default: the target maximum)."""
    gt, pred = _np(gt), _np(pred)
    _check(gt, pred)
    return float(fm_eval.psnr(gt, pred, maxval))


def ssim(gt: Any, pred: Any, maxval: float | None = None) -> float:
    """skimage SSIM per slice (7x7 window), averaged over slices of [S,h,w]; data range as ``psnr``."""
    gt, pred = _np(gt), _np(pred)
    _check(gt, pred)
    return float(np.asarray(fm_eval.ssim(gt, pred, maxval)).reshape(-1)[0])


def center_crop_to(pred: Any, shape: Sequence[int]) -> Any:
    """Centre-crop the last two dims of ``pred`` (numpy or torch) to ``shape[-2:]``."""
    h, w = int(shape[-2]), int(shape[-1])
    if pred.shape[-2] < h or pred.shape[-1] < w:
        raise ValueError(f"cannot crop {tuple(pred.shape)} to ({h}, {w}): prediction is smaller")
    return center_crop(pred, (h, w))


def volume_metrics(target: Any, pred: Any, maxval: float | None = None) -> dict[str, float]:
    """NMSE, PSNR, SSIM of one volume; ``pred`` is centre-cropped to ``target`` [S,h,w] first."""
    target = _np(target)
    pred = _np(center_crop_to(_np(pred), target.shape)).astype(target.dtype)
    return {"NMSE": nmse(target, pred), "PSNR": psnr(target, pred, maxval), "SSIM": ssim(target, pred, maxval)}


def summarize(per_volume: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Means (and sample std) over volumes of a {fname: {metric: value}} dict."""
    out: dict[str, Any] = {"volumes": len(per_volume)}
    for name in METRIC_NAMES:
        vals = np.array([m[name] for m in per_volume.values()], dtype=np.float64)
        out[name] = float(vals.mean()) if vals.size else float("nan")
        out[f"{name}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    return out


class VolumeMetrics:
    """Collects per-slice predictions and scores whole volumes the fastMRI way.

    ``push`` takes one slice or a batch (``fname``/``slice_num`` sequences, ``pred``/``target``
    [B,h,w] or [h,w]); predictions are centre-cropped to the target. ``compute`` returns the mean
    NMSE/PSNR/SSIM over volumes. The data range is the target volume's maximum, or the pushed
    ``max_value`` (the file's ``max`` attribute) with ``use_max_value=True``. Under DDP with a volume
    sampler each process holds whole volumes: gather ``per_volume()`` dicts and call ``summarize``.
    """

    def __init__(self, use_max_value: bool = False):
        self.use_max_value = use_max_value
        self.reset()

    def reset(self) -> None:
        self._pred: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        self._target: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        self._max: dict[str, float] = {}

    def push(self, fname: Any, slice_num: Any, pred: Any, target: Any, max_value: Any = None) -> None:
        pred, target = _np(pred), _np(target)
        if isinstance(fname, str):
            fname, slice_num, pred, target = [fname], [slice_num], pred[None], target[None]
            max_value = None if max_value is None else [max_value]
        slice_num = _np(slice_num).reshape(-1).tolist()
        if max_value is not None:
            max_value = _np(max_value).reshape(-1).tolist()
        for i, (name, s) in enumerate(zip(fname, slice_num)):
            tgt = target[i].astype(np.float32)
            self._target[name][int(s)] = tgt
            self._pred[name][int(s)] = np.asarray(center_crop_to(pred[i], tgt.shape), dtype=np.float32)
            if max_value is not None:
                self._max[name] = float(max_value[i])

    def per_volume(self) -> dict[str, dict[str, float]]:
        out = {}
        for name in sorted(self._target):
            order = sorted(self._target[name])
            tgt = np.stack([self._target[name][s] for s in order])
            pred = np.stack([self._pred[name][s] for s in order])
            maxval = self._max.get(name) if self.use_max_value else None
            out[name] = volume_metrics(tgt, pred, maxval)
        return out

    def compute(self) -> dict[str, Any]:
        return summarize(self.per_volume())


def evaluate_folder(
    pred_dir: str | os.PathLike,
    target_dir: str | os.PathLike,
    recon_key: str | None = None,
    acceleration: int | None = None,
    acquisition: str | None = None,
) -> dict[str, Any]:
    """Score reconstruction files against target files, as ``fastmri.evaluate`` does.

    Each ``target_dir/<name>.h5`` (key ``reconstruction_rss``, else ``reconstruction_esc``) is paired
    with ``pred_dir/<name>.h5`` (key ``reconstruction``); both are centre-cropped to (w, w) of the
    target. Optional filters on the target's ``acceleration`` / ``acquisition`` attributes.
    Returns ``summarize`` output plus ``per_volume``.
    """
    pred_dir, target_dir = Path(pred_dir), Path(target_dir)
    per_volume: dict[str, dict[str, float]] = {}
    targets = sorted(p for p in target_dir.glob("*.h5") if not p.name.startswith("."))
    if not targets:
        raise InvalidInputError(target_dir, "no target .h5 files")
    for tpath in targets:
        target, attrs = read_target(tpath, recon_key)
        if acquisition is not None and attrs.get("acquisition") != acquisition:
            continue
        if acceleration is not None and attrs.get("acceleration") != acceleration:
            continue
        ppath = pred_dir / tpath.name
        if not ppath.is_file():
            raise InvalidInputError(ppath, "missing reconstruction for target " + str(tpath))
        pred, _ = read_target(ppath, "reconstruction")
        w = target.shape[-1]
        crop = (min(target.shape[-2], w), w)
        target = center_crop(target, crop)
        if pred.ndim != 3 or pred.shape[0] != target.shape[0]:
            raise InvalidInputError(ppath, f"reconstruction shape {pred.shape} does not match target {target.shape}")
        try:
            pred = center_crop_to(pred, crop)
        except ValueError as err:
            raise InvalidInputError(ppath, str(err)) from None
        per_volume[tpath.name] = volume_metrics(target, pred)
    return {**summarize(per_volume), "per_volume": per_volume}
