"""Python API for notebooks, the app and the commands: load a codec once, reconstruct volumes.

>>> from mrirecon.api import Reconstructor, TTAConfig
>>> rec = Reconstructor.from_checkpoint()            # the shipped default codec
>>> result = rec.reconstruct_file("scan.h5", acceleration=4)
>>> result.recon.shape, result.metrics
>>> adapted = rec.reconstruct_file("scan.h5", tta=TTAConfig(steps=10))  # or tta_steps=10
>>> adapted.tta.used

Test-time adaptation travels as one :class:`~mrirecon.adapt.tta.TTAConfig` (``tta=``); the keyword form
``tta_<field>=`` (``tta_steps``, ``tta_params``, ``tta_weight_lr``, ...) changes single fields of it and is
what the command lines' ``key=value`` options pass.
"""

from __future__ import annotations

import dataclasses
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
from .physics import crop_readout, readout_margin_noise, zero_filled_rss
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
    # mask type, the network's keyword options and, for an adapted scan, ``tta_steps`` and ``tta_params``
    settings: dict[str, Any] = field(default_factory=dict)
    tta: TTAReport | None = None


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def split_tta_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword options -> (:class:`~mrirecon.adapt.tta.TTAConfig` field values of the ``tta_<field>`` keys, the
    other options). Raises TypeError for a ``tta_`` key that names no field."""
    tta = {key.removeprefix("tta_"): value for key, value in options.items() if key.startswith("tta_")}
    unknown = sorted(set(tta) - {f.name for f in dataclasses.fields(TTAConfig)})
    if unknown:
        known = ", ".join(f"tta_{f.name}" for f in dataclasses.fields(TTAConfig))
        raise TypeError(f"unknown test-time adaptation option {', '.join('tta_' + k for k in unknown)}; use {known}")
    return tta, {key: value for key, value in options.items() if not key.startswith("tta_")}


def margin_noise_samples(net: nn.Module, kspace: torch.Tensor, crop_height: int) -> torch.Tensor | None:
    """Masked k-space [B,C,H,W,2] -> complex [B,C,N]: the noise of the readout rows that the crop to ``crop_height``
    removes, for a codec whose floor or solve reads its noise there (``noise_floor_source`` or
    ``final_solve_noise_source`` ``readout_margin``); None for other codecs or too few rows
    (:func:`~mrirecon.physics.readout_margin_noise`)."""
    floor = getattr(net, "noise_floor", 0) and getattr(net, "noise_floor_source", "kspace") == "readout_margin"
    if floor or getattr(net, "final_solve_noise_source", "kspace") == "readout_margin":
        return readout_margin_noise(kspace, crop_height)
    return None


class Reconstructor:
    """A loaded network (ours or a learned baseline) that reconstructs whole volumes slice-batch-wise.

    ``tta``: per-scan test-time adaptation (:mod:`mrirecon.adapt.tta`); off unless its ``steps`` is positive.
    Any reconstruct call may pass its own ``tta=`` and/or ``tta_steps=``, ``tta_params=``, ... to change it.
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
        cls,
        directory: str | os.PathLike = DEFAULT_CHECKPOINT,
        device: str | torch.device | None = None,
        tta: TTAConfig | None = None,
        **overrides: Any,
    ) -> Reconstructor:
        """Load a codec folder (``codec.safetensors`` + ``card.json``); ``overrides`` change init args,
        except ``tta_*`` keys, which change fields of ``tta`` (default: off), e.g. ``tta_steps=10``."""
        tta_fields, init_overrides = split_tta_options(overrides)
        net, card = load_codec(directory, device="cpu", **init_overrides)
        return cls(net, card, device, dataclasses.replace(tta or TTAConfig(steps=0), **tta_fields))

    def adaptation(self, tta: TTAConfig | None = None, **tta_fields: Any) -> TTAConfig:
        """The test-time adaptation of one call: ``tta`` (default: this reconstructor's) with ``tta_fields``
        (TTAConfig field names, no prefix) changed."""
        return dataclasses.replace(tta or self.tta, **tta_fields)

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
        tta: TTAConfig | None = None,
        **net_kwargs: Any,
    ) -> np.ndarray:
        """masked k-space complex [S,C,H,W] (unsampled columns zero) of one scan, mask bool [W]
        -> magnitude [S,H',W]. ``crop_height``: the target's rows; the fully sampled readout is cut to them
        first (exact, see :func:`~mrirecon.physics.crop_readout`), so H' = min(H, crop_height). The codec's
        noise floor applies only when that cut removes readout oversampling (H > crop_height).
        With test-time adaptation (``tta``, changed by ``tta_<field>`` keys of ``net_kwargs``; see
        :meth:`adaptation`) the scan's adapters are fitted first (:func:`mrirecon.adapt.tta.adapt`).
        ``progress`` is called as ``progress("adaptation step", i, steps)`` and ``progress("slice", done, S)``
        as work ends."""
        tta_fields, net_kwargs = split_tta_options(net_kwargs)
        tta = self.adaptation(tta, **tta_fields)
        kspace = torch.view_as_real(torch.from_numpy(np.ascontiguousarray(masked_kspace, dtype=np.complex64)))
        margin_noise = None
        if getattr(self.net, "noise_floor", 0) and (crop_height is None or crop_height >= kspace.shape[-3]):
            # its noise level is read off the outer readout frequencies, noise alone only where the readout
            # was oversampled; without, edges at the field of view leave signal there (results/default_v19)
            net_kwargs.setdefault("noise_floor", 0.0)
        elif crop_height is not None:
            margin_noise = margin_noise_samples(self.net, kspace, int(crop_height))  # before the crop removes them
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
                if margin_noise is not None:
                    net_kwargs["noise_samples"] = margin_noise[start : start + batch_size].to(self.device)
                out.append(run(k * m, m, nlf, **net_kwargs).float().cpu())
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
        tta: TTAConfig | None = None,
        **net_kwargs: Any,
    ) -> ReconResult:
        """Reconstruct a :class:`~mrirecon.data.Volume`; metrics (fastMRI protocol) when it has a target.
        ``progress``, ``tta``: see :meth:`reconstruct_kspace`. Raises ValueError when the network's output is
        not finite."""
        masked, mask, nlf = self.prepare(volume, mask_type, acceleration, center_fraction, seed)
        tta_fields, net_kwargs = split_tta_options(net_kwargs)
        tta = self.adaptation(tta, **tta_fields)
        t0 = time.perf_counter()
        full = self.reconstruct_kspace(masked, mask, nlf, batch_size, volume.crop_size[0], progress, tta, **net_kwargs)
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
            settings={
                "mask_type": mask_type if volume.mask is None else "from file",
                **net_kwargs,
                **({"tta_steps": tta.steps, "tta_params": tta.params} if tta.steps > 0 else {}),
            },
            tta=self.last_tta_report,
        )

    def reconstruct_file(self, path: str | os.PathLike, limits: Limits | None = None, **kwargs: Any) -> ReconResult:
        """Validate, read and reconstruct a fastMRI HDF5 file (train/val or test format) or ISMRMRD raw data;
        both pass the input gate with the size caps ``limits`` (default :meth:`Limits.from_env`). The result
        holds no header, so it carries no identity beyond ``fname``."""
        return self.reconstruct_volume(read_volume(Path(path), limits=limits), **kwargs)
