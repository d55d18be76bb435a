"""The app's state shared by all sessions (:class:`MriApp`): the network loaded once, the cache of
reconstructions, the per-session folders; the upload gate, the reconstruction of a file and the
per-slice checks (consistency figure, coil maps) that read the file again."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..api import ReconResult, Reconstructor
from ..assets import asset
from ..codecs.checkpoint import DEFAULT_CHECKPOINT
from ..data import InvalidInputError, Limits, Volume
from ..io import read_volume, validate_input
from ..io.files import file_sha256
from ..metrics import nmse, psnr, ssim, volume_metrics
from ..physics import crop_readout_np
from .cache import CACHE_SIZE, Entry, ReconCache, ReconSettings
from .session import SessionFolders, parse_size
from .texts import consistency_text
from .views import consistency_images, measured_kspace_log

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_SIZE = "200mb"
DEFAULT_EXAMPLES_DIR = asset("examples")

Figure = tuple[str, np.ndarray | None, np.ndarray | None]  # Markdown and two uint8 [H,W] maps (or None)


def per_slice_metrics(target: np.ndarray, images: dict[str, np.ndarray]) -> list[dict[str, dict[str, float]]]:
    """SSIM/PSNR/NMSE of every slice of every image volume [S,H,W], data range = the target volume's maximum."""
    maxval = float(target.max())
    return [
        {
            name: {
                "SSIM": ssim(target[s : s + 1], img[s : s + 1], maxval),
                "PSNR": psnr(target[s : s + 1], img[s : s + 1], maxval),
                "NMSE": nmse(target[s : s + 1], img[s : s + 1]),
            }
            for name, img in images.items()
        }
        for s in range(target.shape[0])
    ]


def run_reconstruction(
    rec: Reconstructor, volume: Volume, settings: ReconSettings, progress: Any = None
) -> ReconResult:
    """:meth:`Reconstructor.reconstruct_volume` one slice per network call, so that a Gradio ``progress``
    moves after every slice (and every test-time adaptation step) even for a volume of two slices.
    Raises ValueError for settings the network refuses."""
    n = volume.kspace.shape[0]

    def report(stage: str, done: int, total: int) -> None:
        progress((done, total), desc=f"{stage} {done}/{total}", unit=f"{stage.split()[-1]}s")

    if progress is not None:
        progress((0, n), desc=f"slice 0/{n}", unit="slices")
    try:
        return rec.reconstruct_volume(
            volume,
            mask_type=settings.mask_type,
            acceleration=settings.acceleration,
            batch_size=1,
            progress=report if progress is not None else None,
            tta=rec.adaptation(steps=settings.tta_steps),
            **settings.net_options(),
        )
    except (TypeError, ValueError) as err:
        if settings.tta_steps > 0:
            raise ValueError(
                f"this network cannot run test-time adaptation (TTA steps = {settings.tta_steps}): {err}"
            ) from err
        raise


class MriApp:
    """The network, the cache and the session folders; one reconstruction or file check at a time."""

    def __init__(
        self,
        checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
        examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
        max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
        device: str | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        from ..codecs import ReconModel

        self.checkpoint = Path(checkpoint)
        self.rec = Reconstructor.from_checkpoint(self.checkpoint, device=device)
        self.has_trigger = isinstance(self.rec.net, ReconModel)
        self.default_trigger = (self.rec.card.get("backbone") or {}).get("trigger") or "token"
        self.examples = sorted(Path(examples_dir).glob("*.h5")) if examples_dir else []
        self.max_file_size = max_file_size
        self.max_bytes = parse_size(max_file_size)
        self.limits = Limits.from_env()
        self.cache = ReconCache(cache_size)
        self.sessions = SessionFolders()
        self._lock = threading.Lock()  # one reconstruction at a time (the network is shared)

    def close(self) -> None:
        self.sessions.close()

    # -- reconstruct ---------------------------------------------------------------------------

    def precheck(self, path: str | os.PathLike) -> Any:
        """The cheap part of the gate (upload size, links and storage, declared sizes against
        :attr:`limits`; no data read) -> :class:`~mrirecon.data.FileInfo`. Raises InvalidInputError."""
        size = os.path.getsize(path)
        if size > self.max_bytes:
            raise InvalidInputError(
                path, f"file is {size / 1024**2:.1f} MB, above this server's limit of {self.max_file_size}"
            )
        return validate_input(path, check_values=False, limits=self.limits)

    def load_and_reconstruct(
        self, path: str, mask_type: str, acceleration: int, trigger: str | None, tta_steps: int, progress: Any = None
    ) -> tuple[Entry, bool]:
        """Validate, read and reconstruct one file with the page's settings (or take it from the cache)
        -> (entry, was cached). ``trigger`` is ignored for a network without one.

        Raises InvalidInputError for a bad file and ValueError for settings the network refuses.
        """
        started = time.perf_counter()
        if progress is not None:
            progress(0.0, desc="validating")
        info = self.precheck(path)
        trigger = trigger if self.has_trigger else None
        settings = ReconSettings(mask_type, int(acceleration), trigger, int(tta_steps or 0))
        key = settings.cache_key(file_sha256(path), info.is_test_format)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, True
        entry = self._reconstruct(path, key, settings, started, progress)
        self.cache.put(entry)
        return entry, False

    def _reconstruct(self, path: str, key: str, settings: ReconSettings, started: float, progress: Any) -> Entry:
        with self._lock:
            volume = read_volume(path, limits=self.limits)
            load_s = time.perf_counter() - started
            result = run_reconstruction(self.rec, volume, settings, progress)
        t1 = time.perf_counter()
        slice_metrics = zf_metrics = None
        if result.target is not None:
            if progress is not None:
                progress(1.0, desc="metrics")
            slice_metrics = per_slice_metrics(result.target, {"zero-filled": result.zero_filled, "recon": result.recon})
            zf_metrics = volume_metrics(result.target, result.zero_filled)
        entry = Entry(
            key=key,
            result=result,
            is_test_format=volume.is_test_format,
            header_xml=volume.header_xml,
            attrs=dict(volume.attrs),
            slice_metrics=slice_metrics,
            zf_metrics=zf_metrics,
            kspace_log=measured_kspace_log(volume.kspace, result.mask),
            source=str(path),
            settings=settings,
            timings={
                "load_s": load_s,
                "reconstruct_s": result.seconds,
                "per_slice_s": result.seconds / max(1, result.recon.shape[0]),
                "metrics_s": time.perf_counter() - t1,
            },
        )
        # the consistency figure comes with every reconstruction: the middle slice now, while the data is read
        if progress is not None:
            progress(1.0, desc="consistency check")
        t2 = time.perf_counter()
        try:
            self.consistency(entry, result.recon.shape[0] // 2, volume)
        except Exception:  # the reconstruction stands; the page shows the problem when it asks again
            log.exception("consistency check of %s failed", Path(path).name)
        entry.timings["consistency_s"] = time.perf_counter() - t2
        return entry

    # -- per-slice checks ----------------------------------------------------------------------

    def _source_volume(self, entry: Entry) -> Volume:
        """The entry's file read again (call with the lock held). Raises InvalidInputError if it is gone."""
        if entry.source is None or not os.path.exists(entry.source):
            raise InvalidInputError(
                entry.source or "?", "the uploaded file is no longer on the server; reconstruct again"
            )
        return read_volume(entry.source, limits=self.limits)

    def consistency(self, entry: Entry, s: int, volume: Volume | None = None) -> Figure:
        """The reference-free consistency figure of slice ``s`` (cached in the entry): Markdown with the
        residual on the measured lines and the error on held-out measured lines, and the two k-space maps
        (uint8 [H,W], log scale of the k-space view; None for a network that returns images only).
        ``volume``: the data already in memory, else the file is read again. Raises InvalidInputError."""
        from .consistency import slice_consistency

        res, s = entry.result, entry.slice_index(s)
        if s in entry.consistency:
            return entry.consistency[s]
        with self._lock:
            volume = volume if volume is not None else self._source_volume(entry)
            masked = volume.kspace[s] * np.asarray(res.mask, bool)
            try:
                check = slice_consistency(
                    self.rec.net, masked, res.mask, res.num_low_frequencies, volume.crop_size[0], self.rec.device,
                    **entry.settings.net_options(),
                )  # fmt: skip
            except TypeError:
                out: Figure = (
                    f"**Consistency with the measured data, slice {s}**: this network returns images only "
                    "(no k-space), so its data consistency cannot be shown.",
                    None,
                    None,
                )
            else:
                measured, heldout = consistency_images(check, crop_readout_np(masked, volume.crop_size[0]))
                out = (consistency_text(check, s, adapted=res.tta is not None), measured, heldout)
        entry.consistency[s] = out
        return out

    def coil_maps(self, entry: Entry, s: int) -> tuple[str, np.ndarray]:
        """ESPIRiT coil sensitivity maps of slice ``s`` from its measured calibration lines -> (Markdown,
        montage uint8, coils in a grid). Raises InvalidInputError if the file is gone."""
        from ..baselines.classical import espirit_maps
        from .consistency import coil_montage

        res, s = entry.result, entry.slice_index(s)
        with self._lock:
            volume = self._source_volume(entry)
            maps = espirit_maps(volume.kspace[s] * np.asarray(res.mask, bool), res.num_low_frequencies)
        text = (
            f"**Coil sensitivity maps of slice {s}** (ESPIRiT from the {res.num_low_frequencies} calibration "
            f"lines; {maps.shape[0]} coils, magnitude, row by row)"
        )
        return text, coil_montage(maps)
