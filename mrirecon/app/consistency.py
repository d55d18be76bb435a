"""The app's reference-free checks of one reconstructed slice: how well the network's k-space agrees with
the measured lines, and how well it predicts measured lines it was not given; and the coil-map montage.

Without a fully sampled reference these are the numbers a reader can still trust: the residual on the
measured lines (what data consistency leaves), and the error on held-out measured lines (the split that
test-time adaptation uses, :func:`mrirecon.adapt.selfsup.split_lines`): the network sees only the input lines
and its k-space is compared with the measured loss lines it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..adapt.selfsup import heldout_error
from ..adapt.tta import TTAConfig, scan_split
from ..physics import crop_readout


@dataclass
class SliceConsistency:
    measured_error: float  # sum |K - y| / sum |y| on the measured lines (all lines given)
    heldout_error: float  # the same on held-out measured lines (network given the input lines only)
    heldout_lines: int
    measured_map: np.ndarray  # coil-RSS |K - y| on measured lines, float32 [H,W] (zero elsewhere)
    heldout_map: np.ndarray  # coil-RSS |K - y| on held-out lines, float32 [H,W]


def _relative(pred: torch.Tensor, ref: torch.Tensor, lines: torch.Tensor) -> float:
    """[1,C,H,W,2] predictions and measurements, lines [1,1,1,W,1] -> the relative L1 error there."""
    return float(heldout_error(pred, ref, lines.view(1, -1))[0])


def _rss_map(diff: torch.Tensor) -> np.ndarray:
    """[1,C,H,W,2] -> coil-RSS magnitude float32 [H,W]."""
    return diff.square().sum(-1).sum(1)[0].sqrt().float().cpu().numpy()


def slice_consistency(
    net: torch.nn.Module,
    masked_kspace: np.ndarray,
    mask: np.ndarray,
    num_low_frequencies: int,
    crop_height: int | None = None,
    device: torch.device | str = "cpu",
    **net_kwargs: Any,
) -> SliceConsistency:
    """masked_kspace complex [C,H,W] of one slice (unsampled columns zero), mask bool [W].

    Two forward passes with ``return_kspace=True``; raises TypeError for a network that cannot return
    k-space (the learned baselines)."""
    mask = np.asarray(mask, dtype=bool)
    k = torch.view_as_real(torch.from_numpy(np.ascontiguousarray(masked_kspace[None], dtype=np.complex64)))
    if crop_height is not None:
        k = crop_readout(k, int(crop_height))
    k = k.to(device)
    inp, loss, _ = scan_split(mask, num_low_frequencies, TTAConfig())
    lines = {name: torch.from_numpy(m).view(1, 1, 1, -1, 1).to(device) for name, m in
             (("all", mask), ("input", inp), ("loss", loss))}  # fmt: skip
    with torch.inference_mode():
        full = net(k * lines["all"], lines["all"], num_low_frequencies, return_kspace=True, **net_kwargs).float()
        part = net(k * lines["input"], lines["input"], num_low_frequencies, return_kspace=True, **net_kwargs).float()
    return SliceConsistency(
        measured_error=_relative(full, k, lines["all"]),
        heldout_error=_relative(part, k, lines["loss"]),
        heldout_lines=int(loss.sum()),
        measured_map=_rss_map((full - k) * lines["all"]),
        heldout_map=_rss_map((part - k) * lines["loss"]),
    )


def coil_montage(maps: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Coil sensitivity magnitudes [C,H,W] -> one uint8 image, coils in a grid (row-major, ``columns``
    wide, default about square), scaled to the largest magnitude."""
    from skimage.util import montage

    mag = np.abs(maps).astype(np.float32)
    columns = columns or int(np.ceil(np.sqrt(mag.shape[0])))
    grid = montage(mag, grid_shape=(-(-mag.shape[0] // columns), columns), fill=0.0)
    return (np.clip(grid / max(float(grid.max()), 1e-20), 0, 1) * 255 + 0.5).astype(np.uint8)
