"""Gradio web app: upload fastMRI or ISMRMRD raw k-space (or pick a bundled example), reconstruct, compare, download.

    python -m mrirecon.app [--host 127.0.0.1] [--port 7860] [--checkpoint DIR] [--max-file-size 200mb]

The network is loaded once at start. Reconstructions are cached in memory per (file content,
mask type, acceleration, Trigger mode, TTA steps), so moving the slice slider only re-renders images
(and computes the slice's consistency figure once). The images and texts themselves are made in
:mod:`mrirecon.app_views`, the result area's layout in :mod:`mrirecon.app_layout`.
Uploads (fastMRI k-space or ISMRMRD raw data) are size-capped and checked by the input gate
(:func:`mrirecon.io.validate_input`: nothing outside the file, declared sizes within
:class:`mrirecon.data.Limits`) in an unqueued step before the reconstruction is queued, so a hostile
file never holds the worker; a bad file shows its problem in the page. Downloads are de-identified like
``reconstruct`` and ``convert`` outputs, and are written to a per-session temporary folder that is
removed when the browser tab closes (and with the process); Gradio's own file cache is pruned by
``delete_cache``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from .api import ReconResult, Reconstructor
from .app_layout import COIL_HINT, viewer_blocks
from .app_views import (
    ERROR_GAIN,
    PANEL_PIXELS,
    View,
    comparison_png,
    consistency_images,
    consistency_text,
    crop_readout_np,
    error_rgb,
    mask_image,
    measured_kspace_log,
    to_uint8,
    tta_text,
    upscale,
)
from .assets import asset
from .codecs.checkpoint import DEFAULT_CHECKPOINT
from .data import MASK_TYPES, InvalidInputError, Limits, Volume
from .deid import strip_ismrmrd_identity
from .io import read_volume, validate_input
from .io.files import file_sha256
from .metrics import nmse, psnr, ssim, volume_metrics

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_FILE_SIZE = "200mb"
DEFAULT_EXAMPLES_DIR = asset("examples")
NO_REFERENCE_NOTE = (
    "no reference in a test-format file: metrics need a fully sampled file (train/val format); "
    "see the k-space tab for the measured data"
)
TRIGGER_MODES = ("token", "off", "scan")
ACCELERATIONS = (4, 8)
CACHE_SIZE = 8
# headless Debian chromium on a machine with no network: what the screenshot script and browser tests use
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}  # as Gradio reads max_file_size


def parse_size(size: str | int) -> int:
    """``"200mb"``, ``"1.5gb"``, ``"500kb"`` or a number of bytes -> bytes (binary units, like Gradio)."""
    if isinstance(size, int):
        return size
    match = _SIZE.match(str(size))
    if not match:
        raise ValueError(f"cannot read the size {size!r} (use e.g. 200mb, 1gb or a number of bytes)")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _UNITS[unit])


# ----------------------------------------------------------------------------------------------
# cached reconstructions


@dataclass
class Entry:
    """One reconstructed volume with everything the page shows for it."""

    key: str
    result: ReconResult
    is_test_format: bool
    header_xml: str | None
    attrs: dict[str, Any]
    slice_metrics: list[dict[str, dict[str, float]]] | None  # per slice: {"zero-filled": {...}, "recon": {...}}
    zf_metrics: dict[str, float] | None
    kspace_log: np.ndarray | None = None  # log(1 + coil-RSS |measured k-space|) float32 [S,H,W]
    source: str | None = None  # the file, re-read for the checks of other slices (consistency, coil maps)
    timings: dict[str, float] = field(default_factory=dict)
    # per slice: (Markdown, residual on measured lines, error on held-out lines) uint8 [H,W] or None
    consistency: dict[int, tuple[str, np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)


class ReconCache:
    """A small thread-safe LRU of :class:`Entry` by key."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str | None) -> Entry | None:
        with self._lock:
            if key is None or key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, entry: Entry) -> None:
        with self._lock:
            self._items[entry.key] = entry
            self._items.move_to_end(entry.key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def cache_key(digest: str, test_format: bool, mask_type: str, acceleration: int, trigger: str | None, tta: int) -> str:
    mask = "file" if test_format else f"{mask_type}x{acceleration}"
    return f"{digest[:32]}|{mask}|{trigger or '-'}|tta{tta}"


def per_slice_metrics(target: np.ndarray, images: dict[str, np.ndarray]) -> list[dict[str, dict[str, float]]]:
    """SSIM/PSNR/NMSE of every slice of every image volume, data range = the target volume's maximum."""
    maxval = float(target.max())
    out = []
    for s in range(target.shape[0]):
        gt = target[s : s + 1]
        out.append(
            {
                name: {
                    "SSIM": ssim(gt, img[s : s + 1], maxval),
                    "PSNR": psnr(gt, img[s : s + 1], maxval),
                    "NMSE": nmse(gt, img[s : s + 1]),
                }
                for name, img in images.items()
            }
        )
    return out


def run_reconstruction(
    rec: Reconstructor,
    volume: Volume,
    mask_type: str,
    acceleration: int,
    net_kwargs: dict[str, Any],
    progress: Any = None,
) -> ReconResult:
    """:meth:`Reconstructor.reconstruct_volume` one slice per network call, so that a Gradio ``progress``
    moves after every slice (and every test-time adaptation step) even for a volume of two slices."""
    n = volume.kspace.shape[0]

    def report(stage: str, done: int, total: int) -> None:
        progress((done, total), desc=f"{stage} {done}/{total}", unit=f"{stage.split()[-1]}s")

    if progress is not None:
        progress((0, n), desc=f"slice 0/{n}", unit="slices")
    return rec.reconstruct_volume(
        volume,
        mask_type=mask_type,
        acceleration=acceleration,
        batch_size=1,
        progress=report if progress is not None else None,
        **net_kwargs,
    )


# ----------------------------------------------------------------------------------------------
# downloads


def download_stem(entry: Entry) -> str:
    """Name of an entry's downloads: a keyed pseudonym of the uploaded content (upload names often hold
    the patient's name)."""
    from .dicom import pseudonym

    return pseudonym("upload", entry.key.split("|")[0])


def write_downloads(entry: Entry, out_dir: Path) -> tuple[Path, Path]:
    """The reconstruction as a fastMRI HDF5 file and as a de-identified DICOM series (zip)."""
    from .dicom import acquisition_from_ismrmrd, geometry_from_ismrmrd, write_series
    from .reconstruct import write_reconstruction

    res = entry.result
    stem = download_stem(entry)  # download names never carry the upload's name
    h5 = out_dir / f"{stem}_recon.h5"
    attrs = {
        "acceleration": res.acceleration,
        "num_low_frequency": res.num_low_frequencies,
        "seconds": res.seconds,
        **{k: v for k, v in entry.attrs.items() if k == "acquisition"},
    }
    write_reconstruction(h5, res.recon, attrs, strip_ismrmrd_identity(entry.header_xml))
    dicom_dir = out_dir / f"{stem}_dicom"
    shutil.rmtree(dicom_dir, ignore_errors=True)
    files = write_series(
        res.recon,
        dicom_dir,
        geometry=geometry_from_ismrmrd(entry.header_xml),
        acquisition=acquisition_from_ismrmrd(entry.header_xml),
        series_description="mrirecon reconstruction",
        pseudonym_key=entry.key.split("|")[0],
    )
    archive = out_dir / f"{stem}_dicom.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f"{stem}_dicom/{f.name}")
    shutil.rmtree(dicom_dir, ignore_errors=True)
    return h5, archive


# ----------------------------------------------------------------------------------------------
# the app


class MriApp:
    """The app's state shared by all sessions: the network, the cache and the temporary folder."""

    def __init__(
        self,
        checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
        examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
        max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
        device: str | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        from .codecs import ReconModel

        self.checkpoint = Path(checkpoint)
        self.rec = Reconstructor.from_checkpoint(self.checkpoint, device=device)
        self.has_trigger = isinstance(self.rec.net, ReconModel)
        self.default_trigger = (self.rec.card.get("backbone") or {}).get("trigger") or "token"
        self.examples = sorted(Path(examples_dir).glob("*.h5")) if examples_dir else []
        self.max_file_size = max_file_size
        self.max_bytes = parse_size(max_file_size)
        self.limits = Limits.from_env()
        self.cache = ReconCache(cache_size)
        self._tmp = tempfile.TemporaryDirectory(prefix="mrirecon-app-")
        self.tmp_root = Path(self._tmp.name)
        self._lock = threading.Lock()  # one reconstruction at a time (the network is shared)

    def session_dir(self, session: str | None) -> Path:
        name = re.sub(r"[^A-Za-z0-9_-]", "", session or "") or "anonymous"
        path = self.tmp_root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def drop_session(self, session: str | None) -> None:
        if session:
            shutil.rmtree(self.tmp_root / re.sub(r"[^A-Za-z0-9_-]", "", session), ignore_errors=True)

    def close(self) -> None:
        self._tmp.cleanup()

    @property
    def checkpoint_label(self) -> str:
        try:
            return str(self.checkpoint.resolve().relative_to(Path.cwd()))
        except ValueError:
            return self.checkpoint.name

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
        """Validate, read and reconstruct one file (or take it from the cache) -> (entry, was cached).

        Raises InvalidInputError for a bad file and ValueError for settings the network refuses.
        """
        t0 = time.perf_counter()
        if progress is not None:
            progress(0.0, desc="validating")
        info = self.precheck(path)
        digest = file_sha256(path)
        trigger = trigger if self.has_trigger else None
        tta = int(tta_steps or 0)
        key = cache_key(digest, info.is_test_format, mask_type, int(acceleration), trigger, tta)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, True
        with self._lock:
            volume = read_volume(path, limits=self.limits)
            load_s = time.perf_counter() - t0
            net_kwargs: dict[str, Any] = {}
            if trigger:
                net_kwargs["trigger"] = trigger
            if tta > 0:
                net_kwargs["tta_steps"] = tta
            try:
                result = run_reconstruction(self.rec, volume, mask_type, int(acceleration), net_kwargs, progress)
            except (TypeError, ValueError) as err:
                if tta > 0:
                    raise ValueError(
                        f"this network cannot run test-time adaptation (TTA steps = {tta}): {err}"
                    ) from err
                raise
        t1 = time.perf_counter()
        slice_metrics = zf_metrics = None
        if result.target is not None:
            if progress is not None:
                progress(1.0, desc="metrics")
            slice_metrics = per_slice_metrics(result.target, {"zero-filled": result.zero_filled, "recon": result.recon})
            zf_metrics = volume_metrics(result.target, result.zero_filled)
        kspace_log = measured_kspace_log(volume.kspace, result.mask)
        timings = {
            "load_s": load_s,
            "reconstruct_s": result.seconds,
            "per_slice_s": result.seconds / max(1, result.recon.shape[0]),
            "metrics_s": time.perf_counter() - t1,
        }
        entry = Entry(
            key=key,
            result=result,
            is_test_format=volume.is_test_format,
            header_xml=volume.header_xml,
            attrs=dict(volume.attrs),
            slice_metrics=slice_metrics,
            zf_metrics=zf_metrics,
            kspace_log=kspace_log,
            source=str(path),
            timings=timings,
        )
        # the consistency figure comes with every reconstruction: the middle slice now, while the data is read
        if progress is not None:
            progress(1.0, desc="consistency check")
        t2 = time.perf_counter()
        try:
            self.consistency(entry, result.recon.shape[0] // 2, volume)
        except Exception:  # the reconstruction stands; the page shows the problem when it asks again
            log.exception("consistency check of %s failed", Path(path).name)
        timings["consistency_s"] = time.perf_counter() - t2
        self.cache.put(entry)
        return entry, False

    # -- views ---------------------------------------------------------------------------------

    def slice_images(
        self, entry: Entry, s: int, window: tuple[float, float] = (0.0, 100.0), view: View | None = None
    ) -> dict[str, np.ndarray | None]:
        """The four panels of slice ``s`` at full resolution, or the part ``view`` zooms to (not enlarged);
        ``window`` = (black, white) in percent of the volume maximum (the error map keeps its fixed scale)."""
        res = entry.result
        s = int(np.clip(s, 0, res.recon.shape[0] - 1))
        ref = res.target[s] if res.target is not None else None
        scale = float(res.target.max()) if res.target is not None else float(res.recon.max())
        panels = {
            "zero-filled": to_uint8(res.zero_filled[s], scale, window),
            "reconstruction": to_uint8(res.recon[s], scale, window),
            "reference": to_uint8(ref, scale, window) if ref is not None else None,
            f"|error| x {ERROR_GAIN}": error_rgb(res.recon[s], ref, scale) if ref is not None else None,
        }
        if view is None:
            return panels
        return {name: None if img is None else view.apply(img, min_size=1) for name, img in panels.items()}

    def metrics_table(self, entry: Entry, s: int) -> Any:
        import pandas as pd

        if entry.slice_metrics is None:
            return pd.DataFrame({"metric": ["-"], "note": [NO_REFERENCE_NOTE]})
        s = int(np.clip(s, 0, len(entry.slice_metrics) - 1))
        rows = []
        for name, fmt in (("SSIM", "{:.4f}"), ("PSNR", "{:.2f} dB"), ("NMSE", "{:.5f}")):
            rows.append(
                {
                    "metric": name,
                    f"zero-filled, slice {s}": fmt.format(entry.slice_metrics[s]["zero-filled"][name]),
                    f"reconstruction, slice {s}": fmt.format(entry.slice_metrics[s]["recon"][name]),
                    "zero-filled, volume": fmt.format(entry.zf_metrics[name]),
                    "reconstruction, volume": fmt.format(entry.result.metrics[name]),
                }
            )
        return pd.DataFrame(rows)

    def summary(self, entry: Entry, cached: bool) -> str:
        res, t = entry.result, entry.timings
        mask = (
            f"the file's own mask ({res.acceleration:.1f}x)"
            if entry.is_test_format
            else f"{res.settings.get('mask_type')} mask, {res.acceleration:.1f}x"
        )
        s, h, w = res.recon.shape
        extra = ", ".join(f"{k} = {v}" for k, v in res.settings.items() if k not in ("mask_type",))
        lines = [
            f"**{res.fname}**: {s} slices of {h}x{w}, {mask}, {res.num_low_frequencies} centre lines"
            + (f", {extra}" if extra else ""),
            f"Timings: load + validate {t['load_s']:.2f} s, reconstruction {t['reconstruct_s']:.2f} s "
            f"({t['per_slice_s'] * 1000:.0f} ms per slice), metrics {t['metrics_s']:.2f} s, consistency check "
            f"{t.get('consistency_s', 0.0):.2f} s" + (" (cached result: no new computation)" if cached else ""),
        ]
        return "\n\n".join(lines)

    def tta_note(self, entry: Entry) -> str:
        """Test-time adaptation's before/after numbers of this reconstruction (Markdown), or that it was off."""
        return tta_text(entry.result.tta, int(entry.result.settings.get("tta_steps", 0) or 0))

    def _source_volume(self, entry: Entry) -> Volume:
        """The entry's file read again (call with the lock held). Raises InvalidInputError if it is gone."""
        if entry.source is None or not os.path.exists(entry.source):
            raise InvalidInputError(
                entry.source or "?", "the uploaded file is no longer on the server; reconstruct again"
            )
        return read_volume(entry.source, limits=self.limits)

    def consistency(
        self, entry: Entry, s: int, volume: Volume | None = None
    ) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        """The reference-free consistency figure of slice ``s`` (cached in the entry): Markdown with the
        residual on the measured lines and the error on held-out measured lines, and the two k-space maps
        (uint8 [H,W], log scale of the k-space view; None for a network that returns images only).
        ``volume``: the data already in memory, else the file is read again. Raises InvalidInputError."""
        from .consistency import slice_consistency

        res = entry.result
        s = int(np.clip(s, 0, res.recon.shape[0] - 1))
        if s in entry.consistency:
            return entry.consistency[s]
        with self._lock:
            volume = volume if volume is not None else self._source_volume(entry)
            masked = volume.kspace[s] * np.asarray(res.mask, bool)
            kwargs = {"trigger": res.settings["trigger"]} if "trigger" in res.settings else {}
            try:
                check = slice_consistency(
                    self.rec.net, masked, res.mask, res.num_low_frequencies, volume.crop_size[0], self.rec.device,
                    **kwargs,
                )  # fmt: skip
            except TypeError:
                out = (
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
        from .baselines.classical import espirit_maps
        from .consistency import coil_montage

        res = entry.result
        s = int(np.clip(s, 0, res.recon.shape[0] - 1))
        with self._lock:
            volume = self._source_volume(entry)
            maps = espirit_maps(volume.kspace[s] * np.asarray(res.mask, bool), res.num_low_frequencies)
        text = (
            f"**Coil sensitivity maps of slice {s}** (ESPIRiT from the {res.num_low_frequencies} calibration "
            f"lines; {maps.shape[0]} coils, magnitude, row by row)"
        )
        return text, coil_montage(maps)

    def kspace_image(self, entry: Entry, s: int) -> np.ndarray | None:
        """Log magnitude of the measured k-space of slice ``s`` (coil RSS) as uint8; dark columns were
        not acquired."""
        if entry.kspace_log is None:
            return None
        k = entry.kspace_log[int(np.clip(s, 0, entry.kspace_log.shape[0] - 1))]
        return to_uint8(k, float(entry.kspace_log.max()))

    def details(self, entry: Entry, cached: bool) -> dict[str, Any]:
        res = entry.result
        return {
            "file": res.fname,
            "shape": list(res.recon.shape),
            "test_format": entry.is_test_format,
            "acceleration": res.acceleration,
            "num_low_frequencies": res.num_low_frequencies,
            "settings": res.settings,
            "metrics": res.metrics,
            "zero_filled_metrics": entry.zf_metrics,
            "timings": entry.timings,
            "tta": dataclasses.asdict(res.tta) if res.tta is not None else None,
            "cached": cached,
            "model": self.rec.description,
        }


def _error_box(message: str) -> str:
    return f"**Error:** {message}"


def build_app(
    checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
    examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
    device: str | None = None,
) -> Any:
    """The Gradio Blocks of the app (not launched). ``demo.mri`` is its :class:`MriApp`."""
    app = MriApp(checkpoint, examples_dir, max_file_size, device)
    panel_names = ["zero-filled", "reconstruction", "reference", f"|error| x {ERROR_GAIN}"]
    max_label = app.max_file_size if isinstance(app.max_file_size, str) else f"{app.max_bytes / 1024**2:.0f} MB"

    with gr.Blocks(title="mrirecon: MRI reconstruction", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            "# mrirecon: undersampled multi-coil MRI reconstruction\n"
            f"Checkpoint **{app.checkpoint_label}**: {app.rec.description}, on `{app.rec.device}`.  \n"
            "Upload a fastMRI-style multi-coil k-space file (`.h5`, train/val or test format) or ISMRMRD raw "
            "data, or pick an example, "
            f"then press **Reconstruct**. Uploads are limited to {max_label}.",
            elem_id="header",
        )
        key_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                file_in = gr.File(
                    label="k-space file (.h5)", file_types=[".h5"], type="filepath", elem_id="kspace-file"
                )
                if app.examples:
                    gr.Examples(
                        examples=[[str(p)] for p in app.examples],
                        inputs=[file_in],
                        label="Example scans (simulated, served by this server)",
                        elem_id="examples",
                    )
            with gr.Column(scale=1, min_width=300):
                mask_type = gr.Dropdown(
                    list(MASK_TYPES),
                    value="equispaced_fraction",
                    label="Mask type (fully sampled files)",
                    info="test-format files keep their own mask",
                )
                acceleration = gr.Radio(list(ACCELERATIONS), value=4, label="Acceleration (fully sampled files)")
                trigger = gr.Radio(
                    list(TRIGGER_MODES),
                    value=app.default_trigger if app.default_trigger in TRIGGER_MODES else "token",
                    label="Trigger mode",
                    visible=app.has_trigger,
                    interactive=app.has_trigger,
                )
                tta = gr.Slider(0, 20, value=0, step=1, label="TTA steps (0 = off)")
                run = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct")
        error_box = gr.Markdown("", visible=False, elem_id="error-box")
        summary = gr.Markdown("", elem_id="summary")
        v = viewer_blocks(panel_names)
        with gr.Row():
            dl_h5 = gr.DownloadButton("Reconstruction (fastMRI HDF5)", visible=False, elem_id="dl-h5")
            dl_dcm = gr.DownloadButton("DICOM series (zip, de-identified)", visible=False, elem_id="dl-dicom")
            dl_png = gr.DownloadButton("Comparison of the panels shown (PNG)", visible=False, elem_id="dl-png")
        with gr.Accordion("Details (JSON)", open=False):
            details = gr.JSON(label="details")

        images, checks = v.images, [v.consistency_text, v.residual_measured, v.residual_heldout]
        empty = [None] * len(images)

        def failure(message: str) -> tuple:
            """The error shown once, in the error box (no toast as well); every result area says why it is empty."""
            hide = gr.DownloadButton(visible=False)
            return (
                None,
                gr.Markdown(_error_box(message), visible=True),
                "",
                gr.Slider(),
                *empty,
                None,
                [["-", "no result: see the error above"]],
                hide,
                hide,
                {"error": message},
                hide,
                gr.Slider(),
                gr.Slider(),
                None,
                "No consistency figure: no reconstruction (see the error above).",
                None,
                None,
                "",
                gr.Slider(),
                gr.Slider(),
                gr.Slider(),
                COIL_HINT,
                None,
            )

        def panel_views(entry: Entry, s: int, window: tuple[float, float], view: View, session: str | None) -> tuple:
            """The four panels of slice ``s`` as ``view`` zooms them, and the comparison PNG of what they show."""
            imgs = app.slice_images(entry, s, window, view)
            where = f", {view.label}" if view.label else ""
            panels = [(f"{n} (slice {s}{where})", im) for n, im in imgs.items() if im is not None]
            # one name per slice, window and view: a file being served is never rewritten under the server
            name = (f"{download_stem(entry)}_slice{s:03d}_window{window[0]:g}-{window[1]:g}"
                    f"_zoom{view.zoom:g}-{view.cx:g}-{view.cy:g}.png")  # fmt: skip
            png = comparison_png(panels, app.session_dir(session) / name)
            shown = [gr.Image(value=None if im is None else upscale(im, PANEL_PIXELS), visible=im is not None)
                     for im in imgs.values()]  # fmt: skip
            return (*shown, gr.DownloadButton(value=str(png), visible=True))

        def views(entry: Entry, s: int, window: tuple[float, float], view: View, session: str | None) -> tuple:
            """Panels, metrics table, comparison PNG and k-space of slice ``s``."""
            *shown, png = panel_views(entry, s, window, view, session)
            return (*shown, app.metrics_table(entry, s), png, app.kspace_image(entry, s))

        def consistency_view(entry: Entry, s: int) -> tuple:
            """The consistency figure of slice ``s``; a failure is shown in its place, the page keeps working."""
            try:
                text, measured, heldout = app.consistency(entry, s)
            except InvalidInputError as err:
                return _error_box(f"{Path(err.path).name}: {err.problem}"), None, None
            except Exception as err:  # keep serving; the traceback goes to the server log only
                log.exception("consistency check failed")
                return (
                    _error_box(f"the consistency check failed ({type(err).__name__}); see the server log"),
                    None,
                    None,
                )
            return text, *(None if m is None else upscale(m, PANEL_PIXELS) for m in (measured, heldout))

        def reconstruct(path, mask_type_v, acc_v, trigger_v, tta_v, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            if not path:
                return failure("choose a .h5 k-space file (upload one or click an example) first")
            name = Path(path).name
            session = request.session_hash if request else None
            try:
                entry, cached = app.load_and_reconstruct(path, mask_type_v, acc_v, trigger_v, tta_v, progress)
                h5, archive = write_downloads(entry, app.session_dir(session))
            except InvalidInputError as err:
                return failure(f"{Path(err.path).name}: {err.problem}")
            except (ValueError, TypeError) as err:
                return failure(f"{name}: {err}")
            except Exception as err:  # keep serving; the traceback goes to the server log only
                log.exception("reconstruction of %s failed", name)
                return failure(f"{name}: reconstruction failed ({type(err).__name__}); see the server log")
            n = entry.result.recon.shape[0]
            *imgs, table, png, kspace = views(entry, n // 2, (0.0, 100.0), View(), session)
            return (
                entry.key,
                gr.Markdown("", visible=False),
                app.summary(entry, cached),
                gr.Slider(minimum=0, maximum=max(n - 1, 1), value=n // 2, step=1, interactive=n > 1),
                *imgs,
                mask_image(entry.result.mask),
                table,
                gr.DownloadButton(value=str(h5), visible=True),
                gr.DownloadButton(value=str(archive), visible=True),
                app.details(entry, cached),
                png,
                gr.Slider(value=0),  # a new volume starts with the full window and the whole image
                gr.Slider(value=100),
                kspace,
                *consistency_view(entry, n // 2),
                app.tta_note(entry),
                gr.Slider(value=1),
                gr.Slider(value=50),
                gr.Slider(value=50),
                COIL_HINT,
                None,
            )

        recon_outputs = [key_state, error_box, summary, v.slider, *images, v.mask, v.metrics, dl_h5, dl_dcm, details,
                         dl_png, v.black, v.white, v.kspace, *checks, v.tta_box, v.zoom, v.cx, v.cy, v.coil_text,
                         v.coils]  # fmt: skip
        render_inputs = [key_state, v.slider, v.black, v.white, v.zoom, v.cx, v.cy]
        render_outputs = [*images, v.metrics, dl_png, v.kspace]
        gate_ok = gr.State(True)  # API callers skip the gate (the queued step re-checks); the page sets it

        def gate(path):
            """Unqueued: show the problem of a hostile or oversized file at once; only a file that passes
            is reconstructed (``gate_ok``)."""
            if not path:
                return False, *failure("choose a .h5 k-space file (upload one or click an example) first")
            try:
                app.precheck(path)
            except InvalidInputError as err:
                return False, *failure(f"{Path(err.path).name}: {err.problem}")
            except OSError as err:
                return False, *failure(f"{Path(path).name}: cannot read the file ({err.strerror})")
            return True, *[gr.skip()] * len(recon_outputs)

        def reconstruct_checked(ok, path, mask_v, acc_v, trigger_v, tta_v, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            if not ok:  # refused by the gate: its message is already shown
                return tuple(gr.skip() for _ in recon_outputs)
            return reconstruct(path, mask_v, acc_v, trigger_v, tta_v, request, progress)

        run.click(gate, [file_in], [gate_ok, *recon_outputs], queue=False, api_visibility="private").then(
            reconstruct_checked,
            [gate_ok, file_in, mask_type, acceleration, trigger, tta],
            recon_outputs,
            api_name="reconstruct",
            concurrency_limit=1,
        )

        def render(key, s, black_v, white_v, zoom_v, cx_v, cy_v, request: gr.Request):
            entry = app.cache.get(key)
            if entry is None:
                note = [["-", "no reconstruction shown: press Reconstruct (results of idle sessions are dropped)"]]
                return (*[gr.skip()] * len(images), note, gr.DownloadButton(visible=False), gr.skip())
            window = (float(black_v if black_v is not None else 0), float(white_v if white_v is not None else 100))
            view = View.of(zoom_v, cx_v, cy_v)
            return views(entry, int(s or 0), window, view, request.session_hash if request else None)

        def render_panels(key, s, black_v, white_v, zoom_v, cx_v, cy_v, request: gr.Request):
            """Window/level and zoom change only the panels: the k-space view and the metrics are not sent
            again (Gradio rewrites an identical image's cache file in place, which can cut short a download
            of it that is still running)."""
            *imgs, _table, png, _kspace = render(key, s, black_v, white_v, zoom_v, cx_v, cy_v, request)
            return (*imgs, gr.skip(), png, gr.skip())

        def render_window(key, s, black_v, white_v, zoom_v, cx_v, cy_v, request: gr.Request):
            """Window/level leaves the error map as it is (its scale is fixed)."""
            *imgs, error_map, table, png, kspace = render_panels(key, s, black_v, white_v, zoom_v, cx_v, cy_v, request)
            return (*imgs, gr.skip(), table, png, kspace)

        def slice_consistency(key, s):
            entry = app.cache.get(key)
            if entry is None:
                return "No reconstruction to check: press Reconstruct first.", None, None
            return consistency_view(entry, int(s or 0))

        quiet = {"trigger_mode": "always_last", "show_progress": "hidden"}
        v.slider.input(render, render_inputs, render_outputs, api_name="render", **quiet).then(
            slice_consistency, [key_state, v.slider], checks, api_name="consistency", concurrency_limit=1
        )
        for control in (v.black, v.white):
            control.input(render_window, render_inputs, render_outputs, api_visibility="private", **quiet)
        for control in (v.zoom, v.cx, v.cy):
            control.input(render_panels, render_inputs, render_outputs, api_visibility="private", **quiet)

        def reset_zoom(key, s, black_v, white_v, request: gr.Request):
            return 1, 50, 50, *render_panels(key, s, black_v, white_v, 1, 50, 50, request)

        def centre_on_click(key, s, black_v, white_v, zoom_v, cx_v, cy_v, evt: gr.SelectData, request: gr.Request):
            """A click on any panel centres every panel there (and zooms in 2x from the whole image)."""
            entry = app.cache.get(key)
            if entry is None or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
                return (*[gr.skip()] * 3, *render_panels(key, s, black_v, white_v, zoom_v, cx_v, cy_v, request))
            view, image_shape = View.of(zoom_v, cx_v, cy_v), entry.result.recon.shape[1:]
            shown = upscale(view.apply(np.zeros(image_shape, np.uint8), min_size=1), PANEL_PIXELS).shape
            new = view.centred_on(shown, tuple(evt.index), image_shape)
            return new.zoom, new.cx, new.cy, *render_panels(key, s, black_v, white_v, new.zoom, new.cx, new.cy, request)

        zoom_controls = [v.zoom, v.cx, v.cy]
        v.reset.click(reset_zoom, render_inputs[:4], [*zoom_controls, *render_outputs], api_visibility="private")
        for image in images:
            image.select(centre_on_click, render_inputs, [*zoom_controls, *render_outputs], api_visibility="private")

        def coil_maps(key, s):
            entry = app.cache.get(key)
            if entry is None:
                return "No reconstruction: press Reconstruct first.", None
            try:
                return app.coil_maps(entry, int(s or 0))
            except InvalidInputError as err:
                return _error_box(f"{Path(err.path).name}: {err.problem}"), None
            except Exception as err:  # e.g. ESPIRiT without a calibration region; keep serving
                log.exception("coil maps failed")
                return _error_box(f"the coil maps failed ({type(err).__name__}: {err})"), None

        v.coil_button.click(
            coil_maps, [key_state, v.slider], [v.coil_text, v.coils], api_name="coil_maps", concurrency_limit=1
        )

        def drop_session(request: gr.Request) -> None:
            app.drop_session(request.session_hash if request else None)

        demo.unload(drop_session)
    demo.mri = app
    return demo


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    share: bool = False,
    checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
    examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
    device: str | None = None,
    **launch_kwargs: Any,
) -> Any:
    """Build and serve the app (blocking unless ``prevent_thread_lock=True``); loopback, no share link by default."""
    demo = build_app(checkpoint=checkpoint, examples_dir=examples_dir, max_file_size=max_file_size, device=device)
    demo.queue(default_concurrency_limit=4)
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            max_file_size=max_file_size,
            show_error=False,
            **launch_kwargs,
        )
    finally:
        if not launch_kwargs.get("prevent_thread_lock"):
            demo.close()
            demo.mri.close()
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mrirecon.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", default=DEFAULT_PORT, type=int)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, type=Path, help="codec folder (card.json)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--max-file-size", default=DEFAULT_MAX_FILE_SIZE, help="upload cap, e.g. 200mb or 1gb")
    parser.add_argument("--examples", default=DEFAULT_EXAMPLES_DIR, type=Path, help="folder of example .h5 files")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind on `kill` so temporary files are removed
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        parse_size(args.max_file_size)
    except ValueError as err:
        parser.error(str(err))
    try:
        launch(args.host, args.port, args.share, args.checkpoint, args.max_file_size, args.examples, args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: cannot load the checkpoint: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
