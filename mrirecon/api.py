"""Python API for notebooks, the app and the commands: load a codec once, reconstruct volumes.

>>> from mrirecon.api import Reconstructor
>>> rec = Reconstructor.from_checkpoint()            # the shipped default codec
>>> result = rec.reconstruct_file("scan.h5", acceleration=4)
>>> result.recon.shape, result.metrics
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .adapt.tta import TTAConfig, TTAReport, adapt
from .codecs.checkpoint import DEFAULT_CHECKPOINT, load_codec
from .data import Limits, Volume, file_mask
from .data.transforms import center_run_length
from .io import read_volume
from .metrics import center_crop_to, volume_metrics
from .physics import crop_readout, zero_filled_rss
from .progress import ProgressCallback


@dataclass
class ReconResult:
    """A reconstructed volume; images are magnitudes [S,h,w] cropped to the target size."""

    fname: str
    recon: np.ndarray
    zero_filled: np.ndarray
    target: np.ndarray | None
    mask: np.ndarray  # bool [W]
    acceleration: float
    num_low_frequencies: int
    metrics: dict[str, float] | None  # NMSE, PSNR, SSIM when a target exists
    seconds: float  # reconstruction time, test-time adaptation included
    settings: dict[str, Any] = field(default_factory=dict)
    tta: TTAReport | None = None


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _tta_options(options: dict[str, Any]) -> dict[str, Any]:
    """Pop ``tta_<field>`` keys (``tta_steps``, ``tta_lr``, ...) into TTAConfig field values."""
    return {key[4:]: options.pop(key) for key in [k for k in options if k.startswith("tta_")]}


class Reconstructor:
    """A loaded network (ours or a learned baseline) that reconstructs whole volumes slice-batch-wise.

    ``tta``: per-scan test-time adaptation (:mod:`mrirecon.adapt.tta`); off unless its ``steps`` is positive.
    Any reconstruct call may also pass ``tta_steps=``, ``tta_params=``, ... to override it.
    """

    def __init__(
        self,
        net: nn.Module,
        card: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        tta: TTAConfig | None = None,
    ) -> None:
        self.device = torch.device(device) if device else _default_device()
        self.net = net.to(self.device).eval()
        self.card = card or {}
        self.tta = tta or TTAConfig(steps=0)
        self.last_tta_report: TTAReport | None = None

    @classmethod
    def from_checkpoint(
        cls, directory: str | os.PathLike = DEFAULT_CHECKPOINT, device: str | torch.device | None = None, **overrides
    ) -> Reconstructor:
        """Load a codec folder (``codec.safetensors`` + ``card.json``); ``overrides`` change init args,
        except ``tta_*`` keys, which set the test-time adaptation (e.g. ``tta_steps=10``)."""
        tta = TTAConfig(**{"steps": 0, **_tta_options(overrides)})
        net, card = load_codec(directory, device="cpu", **overrides)
        return cls(net, card, device, tta)

    @property
    def description(self) -> str:
        bb = self.card.get("backbone") or {}
        net = self.card.get("net", {}).get("class_path", type(self.net).__name__)
        return f"{net} / backbone {bb.get('name')} ({bb.get('weights')})"

    def reconstruct_kspace(
        self,
        masked_kspace: np.ndarray,
        mask: np.ndarray,
        num_low_frequencies: int | None = None,
        batch_size: int = 4,
        crop_height: int | None = None,
        progress: ProgressCallback | None = None,
        **net_kwargs: Any,
    ) -> np.ndarray:
        """masked k-space complex [S,C,H,W] (unsampled columns zero) of one scan, mask bool [W]
        -> magnitude [S,H',W]. ``crop_height``: the target's rows; the fully sampled readout is cut to them
        first (exact, see :func:`~mrirecon.physics.crop_readout`), so H' = min(H, crop_height).
        With test-time adaptation the scan's adapters are fitted first (:func:`mrirecon.adapt.tta.adapt`).
        ``progress`` is called as ``progress("adaptation step", i, steps)`` and ``progress("slice", done, S)``
        as work ends."""
        options = {**{f"tta_{k}": v for k, v in vars(self.tta).items()}, **net_kwargs}
        tta = TTAConfig(**_tta_options(options))
        kspace = torch.view_as_real(torch.from_numpy(np.ascontiguousarray(masked_kspace, dtype=np.complex64)))
        if crop_height is not None:
            kspace = crop_readout(kspace, int(crop_height))
        mask_t = torch.from_numpy(np.asarray(mask, dtype=bool)).view(1, 1, 1, -1, 1)
        nlf = num_low_frequencies if num_low_frequencies is not None else center_run_length(np.asarray(mask))
        self.last_tta_report = None
        run = self.net
        if tta.steps > 0:
            adapter, self.last_tta_report = adapt(
                self.net, kspace.to(self.device), np.asarray(mask, bool), nlf, tta, on_step=progress
            )
            if adapter is not None:
                run = functools.partial(adapter, self.net)
        out = []
        with torch.inference_mode():
            for start in range(0, kspace.shape[0], batch_size):
                k = kspace[start : start + batch_size].to(self.device)
                m = mask_t.expand(k.shape[0], 1, 1, -1, 1).to(self.device)
                out.append(run(k * m, m, nlf, **options).float().cpu())
                if progress is not None:
                    progress("slice", start + k.shape[0], kspace.shape[0])
        return torch.cat(out).numpy()

    def prepare(
        self,
        volume: Volume,
        mask_type: str = "equispaced_fraction",
        acceleration: int = 4,
        center_fraction: float | None = None,
        seed: Any = None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The masked k-space, mask and number of low frequencies for a volume: a test-format file keeps
        its own mask; a fully sampled one gets a mask fixed by its file name (or ``seed``)."""
        if volume.mask is not None:
            mask = volume.mask.astype(bool)
            nlf = volume.num_low_frequencies or center_run_length(mask)
        else:
            mask, nlf = file_mask(volume.fname, volume.kspace.shape[-1], mask_type, acceleration, center_fraction, seed)
        return volume.kspace * mask, mask, int(nlf)

    def reconstruct_volume(
        self,
        volume: Volume,
        mask_type: str = "equispaced_fraction",
        acceleration: int = 4,
        center_fraction: float | None = None,
        seed: Any = None,
        batch_size: int = 4,
        progress: ProgressCallback | None = None,
        **net_kwargs: Any,
    ) -> ReconResult:
        """Reconstruct a :class:`~mrirecon.data.Volume`; metrics (fastMRI protocol) when it has a target.
        ``progress``: see :meth:`reconstruct_kspace`. Raises ValueError when the network's output is not finite."""
        masked, mask, nlf = self.prepare(volume, mask_type, acceleration, center_fraction, seed)
        t0 = time.perf_counter()
        full = self.reconstruct_kspace(
            masked, mask, nlf, batch_size=batch_size, crop_height=volume.crop_size[0], progress=progress, **net_kwargs
        )
        seconds = time.perf_counter() - t0
        if not np.isfinite(full).all():
            raise ValueError(f"{volume.fname}: the reconstruction holds NaN or Inf values")
        zf = zero_filled_rss(torch.view_as_real(torch.from_numpy(masked)))
        recon = np.ascontiguousarray(center_crop_to(full, volume.crop_size), dtype=np.float32)
        zero_filled = np.ascontiguousarray(center_crop_to(zf.numpy(), volume.crop_size), dtype=np.float32)
        metrics = volume_metrics(volume.target, recon) if volume.target is not None else None
        return ReconResult(
            fname=volume.fname,
            recon=recon,
            zero_filled=zero_filled,
            target=volume.target,
            mask=mask,
            acceleration=float(mask.size / max(1, mask.sum())),
            num_low_frequencies=nlf,
            metrics=metrics,
            seconds=seconds,
            settings={"mask_type": mask_type if volume.mask is None else "from file", **net_kwargs},
            tta=self.last_tta_report,
        )

    def reconstruct_file(self, path: str | os.PathLike, limits: Limits | None = None, **kwargs: Any) -> ReconResult:
        """Validate, read and reconstruct a fastMRI HDF5 file (train/val or test format) or ISMRMRD raw data;
        both pass the input gate with the size caps ``limits`` (default :meth:`Limits.from_env`). The result
        holds no header, so it carries no identity beyond ``fname``."""
        return self.reconstruct_volume(read_volume(Path(path), limits=limits), **kwargs)
