"""Gradio web app: upload fastMRI or ISMRMRD raw k-space (or pick a bundled example), reconstruct, compare, download.

    python -m mrirecon.app [--host 127.0.0.1] [--port 7860] [--checkpoint DIR] [--max-file-size 200mb]

The network is loaded once at start. Reconstructions are cached in memory per (file content,
mask type, acceleration, Trigger mode, TTA steps), so moving the slice slider only re-renders images.
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
import hashlib
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
from .assets import asset
from .checkpoint import DEFAULT_CHECKPOINT
from .data import MASK_TYPES, InvalidInputError, Limits, Volume
from .deid import strip_ismrmrd_identity
from .io import read_volume, validate_input
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
ERROR_GAIN = 5  # the error map shows |recon - reference| x ERROR_GAIN
TRIGGER_MODES = ("token", "off", "scan")
ACCELERATIONS = (4, 8)
CACHE_SIZE = 8
PANEL_HEIGHT = 480  # px of each image panel (a fullscreen button enlarges one further)
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


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


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
    source: str | None = None  # the file, re-read for the on-demand checks (coil maps, consistency)
    timings: dict[str, float] = field(default_factory=dict)


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


def crop_readout_np(kspace: np.ndarray, height: int) -> np.ndarray:
    """complex [..., H, W] -> [..., min(H, height), W]: the readout field of view cut to ``height`` rows
    (:func:`mrirecon.physics.crop_readout` on numpy data)."""
    import torch

    from .physics import crop_readout

    k = torch.view_as_real(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)))
    return torch.view_as_complex(crop_readout(k, int(height)).contiguous()).numpy()


def measured_kspace_log(volume: Volume, mask: np.ndarray) -> np.ndarray:
    """log(1 + coil-RSS magnitude) of the measured k-space [S,C,H,W] under ``mask`` [W] -> float32 [S,H,W]."""
    rss = np.sqrt((np.abs(volume.kspace * np.asarray(mask, bool)) ** 2).sum(axis=1))
    return np.log1p(rss / max(float(rss.max()), 1e-20) * 1e4).astype(np.float32)  # 1e4: visible dynamic range


# ----------------------------------------------------------------------------------------------
# images


def to_uint8(img: np.ndarray, scale: float, window: tuple[float, float] = (0.0, 100.0)) -> np.ndarray:
    """Magnitude image -> uint8 grey; ``window`` = (black, white) in percent of ``scale``."""
    lo, hi = sorted(float(w) / 100.0 * scale for w in window)
    return (np.clip((img - lo) / max(hi - lo, 1e-20 * max(scale, 1.0)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def error_rgb(recon: np.ndarray, target: np.ndarray, scale: float) -> np.ndarray:
    """|recon - target| x ERROR_GAIN / scale through the 'inferno' colour map -> uint8 RGB."""
    from matplotlib import colormaps

    err = np.clip(np.abs(recon - target) * ERROR_GAIN / max(scale, 1e-20), 0.0, 1.0)
    return (colormaps["inferno"](err)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def mask_image(mask: np.ndarray, height: int = 40, min_width: int = 512) -> np.ndarray:
    """The 1-D column mask as a stripe image (white = sampled phase-encode line)."""
    row = np.asarray(mask, dtype=bool).reshape(-1)
    rep = max(1, -(-min_width // row.size))
    stripe = np.where(np.repeat(row, rep), 255, 30).astype(np.uint8)
    return np.pad(np.repeat(stripe[None], height, axis=0), 3, constant_values=128)  # grey frame


def upscale(img: np.ndarray, min_size: int = 256) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor so the shorter side is at least ``min_size``."""
    k = max(1, -(-min_size // min(img.shape[:2])))
    return np.repeat(np.repeat(img, k, axis=0), k, axis=1) if k > 1 else img


def _gray_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def comparison_png(panels: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """Panels side by side with their titles above, saved as PNG."""
    from PIL import Image, ImageDraw

    h = max(p.shape[0] for _, p in panels)
    scale = max(1, 256 // h)
    tiles = [np.kron(_gray_rgb(p), np.ones((scale, scale, 1), np.uint8)) for _, p in panels]
    gap, title = 8, 18
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1)
    canvas = Image.new("RGB", (width, h * scale + title + 2 * gap), "black")
    draw = ImageDraw.Draw(canvas)
    x = gap
    for (name, _), tile in zip(panels, tiles, strict=True):
        draw.text((x, gap // 2), name, fill="white")
        canvas.paste(Image.fromarray(tile), (x, title + gap))
        x += tile.shape[1] + gap
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    canvas.save(tmp, format="PNG")
    os.replace(tmp, path)  # complete files only
    return path


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
        kspace_log = measured_kspace_log(volume, result.mask)
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
        self.cache.put(entry)
        return entry, False

    # -- views ---------------------------------------------------------------------------------

    def slice_images(
        self, entry: Entry, s: int, window: tuple[float, float] = (0.0, 100.0)
    ) -> dict[str, np.ndarray | None]:
        """The four panels of slice ``s``; ``window`` = (black, white) in percent of the volume maximum
        (the error map keeps its fixed scale)."""
        res = entry.result
        s = int(np.clip(s, 0, res.recon.shape[0] - 1))
        ref = res.target[s] if res.target is not None else None
        scale = float(res.target.max()) if res.target is not None else float(res.recon.max())
        return {
            "zero-filled": to_uint8(res.zero_filled[s], scale, window),
            "reconstruction": to_uint8(res.recon[s], scale, window),
            "reference": to_uint8(ref, scale, window) if ref is not None else None,
            f"|error| x {ERROR_GAIN}": error_rgb(res.recon[s], ref, scale) if ref is not None else None,
        }

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
            f"({t['per_slice_s'] * 1000:.0f} ms per slice), metrics {t['metrics_s']:.2f} s"
            + (" (cached result: no new computation)" if cached else ""),
        ]
        if res.tta is not None:
            r = res.tta
            change = (r.stop_error_after - r.stop_error_before) / max(r.stop_error_before, 1e-20) * 100
            lines.append(
                f"Test-time adaptation: {r.steps_run} steps run, best at step {r.best_step}; error on the held-out "
                f"early-stopping lines {r.stop_error_before:.4f} before, {r.stop_error_after:.4f} after "
                f"({change:+.1f} %)" + ("; no step improved on the start, so it was kept" if r.best_step == 0 else "")
            )
        return "\n\n".join(lines)

    def slice_checks(self, entry: Entry, s: int) -> tuple[str, np.ndarray | None, np.ndarray | None, np.ndarray]:
        """On demand for slice ``s``: the reference-free consistency numbers (Markdown), the k-space
        residual on measured and on held-out lines (uint8, log scale shared with the k-space view) and
        the ESPIRiT coil-map montage. Raises InvalidInputError if the file is gone or changed."""
        from .baselines.classical import espirit_maps
        from .consistency import coil_montage, slice_consistency

        if entry.source is None or not os.path.exists(entry.source):
            raise InvalidInputError(
                entry.source or "?", "the uploaded file is no longer on the server; reconstruct again"
            )
        res = entry.result
        s = int(np.clip(s, 0, res.recon.shape[0] - 1))
        with self._lock:
            volume = read_volume(entry.source, limits=self.limits)
            masked = volume.kspace[s] * np.asarray(res.mask, bool)
            nlf = res.num_low_frequencies
            maps = espirit_maps(masked, nlf)
            kwargs = {"trigger": res.settings["trigger"]} if "trigger" in res.settings else {}
            text = f"**Slice {s}: reference-free checks**\n\n"
            residuals: list[np.ndarray | None] = [None, None]
            try:
                check = slice_consistency(
                    self.rec.net, masked, res.mask, nlf, volume.crop_size[0], self.rec.device, **kwargs
                )
            except TypeError:
                text += "this network returns images only (no k-space), so its data consistency cannot be shown."
            else:
                measured = crop_readout_np(masked, volume.crop_size[0])
                top = float(np.sqrt((np.abs(measured) ** 2).sum(axis=0)).max())
                residuals = [
                    to_uint8(np.log1p(m / max(top, 1e-20) * 1e4), float(np.log1p(1e4)))
                    for m in (check.measured_map, check.heldout_map)
                ]
                text += (
                    f"Residual on the measured lines: {check.measured_error:.4f} (relative L1; what data "
                    f"consistency leaves).  \nError on {check.heldout_lines} held-out measured lines, predicted "
                    f"from the others: {check.heldout_error:.4f} (1.0 = no better than predicting zeros; the "
                    "split test-time adaptation uses)."
                )
        return text, residuals[0], residuals[1], coil_montage(maps)

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
        slider = gr.Slider(0, 1, value=0, step=1, label="Slice", elem_id="slice", interactive=True)
        with gr.Row():
            black = gr.Slider(0, 100, value=0, step=1, label="Window: black level (% of volume maximum)",
                              elem_id="window-black")  # fmt: skip
            white = gr.Slider(0, 100, value=100, step=1, label="Window: white level (% of volume maximum)",
                              elem_id="window-white")  # fmt: skip
        with gr.Tabs():
            with gr.Tab("Images", elem_id="tab-images"), gr.Row():
                images = [
                    gr.Image(
                        label=name,
                        format="png",
                        interactive=False,
                        elem_id=f"img-{i}",
                        buttons=["download", "fullscreen"],
                        height=PANEL_HEIGHT,
                    )  # fmt: skip
                    for i, name in enumerate(panel_names)
                ]
            with gr.Tab("k-space and mask", elem_id="tab-kspace"):
                kspace_img = gr.Image(
                    label="Measured k-space of this slice (log magnitude, coil RSS; dark columns were not acquired)",
                    format="png",
                    interactive=False,
                    elem_id="kspace",
                    buttons=["download", "fullscreen"],
                    height=PANEL_HEIGHT,
                )
                mask_img = gr.Image(
                    label="Sampling mask (white = acquired phase-encode line)",
                    format="png",
                    interactive=False,
                    elem_id="mask",
                    height=80,
                )
            with gr.Tab("Consistency and coil maps", elem_id="tab-checks"):
                check = gr.Button("Check this slice (two more network passes and ESPIRiT coil maps)", elem_id="check")
                check_text = gr.Markdown(
                    "Reference-free checks of the slice shown: press the button above.", elem_id="check-text"
                )
                with gr.Row():
                    residual_measured = gr.Image(
                        label="k-space residual on the measured lines (log scale, as the k-space view)",
                        format="png",
                        interactive=False,
                        elem_id="residual-measured",
                        buttons=["download", "fullscreen"],
                        height=PANEL_HEIGHT,
                    )
                    residual_heldout = gr.Image(
                        label="k-space error on held-out measured lines (log scale)",
                        format="png",
                        interactive=False,
                        elem_id="residual-heldout",
                        buttons=["download", "fullscreen"],
                        height=PANEL_HEIGHT,
                    )
                    coils = gr.Image(
                        label="Coil sensitivity maps (ESPIRiT, magnitude)",
                        format="png",
                        interactive=False,
                        elem_id="coils",
                        buttons=["download", "fullscreen"],
                        height=PANEL_HEIGHT,
                    )
        metrics = gr.Dataframe(
            value=[["-", "press Reconstruct"]],
            headers=["metric", "value"],
            label="Metrics (data range = reference volume maximum)",
            elem_id="metrics",
            interactive=False,
        )
        with gr.Row():
            dl_h5 = gr.DownloadButton("Reconstruction (fastMRI HDF5)", visible=False, elem_id="dl-h5")
            dl_dcm = gr.DownloadButton("DICOM series (zip, de-identified)", visible=False, elem_id="dl-dicom")
            dl_png = gr.DownloadButton("Comparison (PNG)", visible=False, elem_id="dl-png")
        with gr.Accordion("Details (JSON)", open=False):
            details = gr.JSON(label="details")

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
            )

        def views(entry: Entry, s: int, window: tuple[float, float], session: str | None) -> tuple:
            """Images, metrics table, comparison PNG and k-space of slice ``s``."""
            imgs = app.slice_images(entry, s, window)
            panels = [(f"{n} (slice {s})", im) for n, im in imgs.items() if im is not None]
            # one name per slice and window: a file being served is never rewritten under the server
            name = f"{download_stem(entry)}_slice{s:03d}_window{window[0]:g}-{window[1]:g}.png"
            png = comparison_png(panels, app.session_dir(session) / name)
            outs = [gr.Image(value=None if im is None else upscale(im), visible=im is not None) for im in imgs.values()]
            return (
                *outs,
                app.metrics_table(entry, s),
                gr.DownloadButton(value=str(png), visible=True),
                app.kspace_image(entry, s),
            )

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
            *imgs, table, png, kspace = views(entry, n // 2, (0.0, 100.0), session)
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
                gr.Slider(value=0),  # a new volume starts with the full window
                gr.Slider(value=100),
                kspace,
            )

        def render(key, s, black_v, white_v, request: gr.Request):
            entry = app.cache.get(key)
            if entry is None:
                note = [["-", "no reconstruction shown: press Reconstruct (results of idle sessions are dropped)"]]
                return (*[gr.skip()] * len(images), note, gr.DownloadButton(visible=False), gr.skip())
            window = (float(black_v if black_v is not None else 0), float(white_v if white_v is not None else 100))
            return views(entry, int(s or 0), window, request.session_hash if request else None)

        recon_outputs = [key_state, error_box, summary, slider, *images, mask_img, metrics, dl_h5, dl_dcm, details,
                         dl_png, black, white, kspace_img]  # fmt: skip
        render_outputs = [*images, metrics, dl_png, kspace_img]
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
        render_inputs = [key_state, slider, black, white]
        slider.input(
            render, render_inputs, render_outputs, api_name="render", trigger_mode="always_last", show_progress="hidden"
        )

        def render_window(key, s, black_v, white_v, request: gr.Request):
            """Window/level changes only the grey panels: the error map, the k-space view and the metrics
            are not sent again (Gradio rewrites an identical image's cache file in place, which can cut
            short a download of it that is still running)."""
            *imgs, error_map, table, png, kspace = render(key, s, black_v, white_v, request)
            return (*imgs, gr.skip(), gr.skip(), png, gr.skip())

        for control in (black, white):
            control.input(
                render_window, render_inputs, render_outputs, api_visibility="private", trigger_mode="always_last",
                show_progress="hidden",
            )  # fmt: skip

        def slice_checks(key, s):
            entry = app.cache.get(key)
            if entry is None:
                return "No reconstruction to check: press Reconstruct first.", None, None, None
            try:
                text, measured, heldout, montage = app.slice_checks(entry, int(s or 0))
            except InvalidInputError as err:
                return _error_box(f"{Path(err.path).name}: {err.problem}"), None, None, None
            except Exception as err:  # e.g. ESPIRiT without a calibration region; keep serving
                log.exception("slice checks failed")
                return _error_box(f"the checks failed ({type(err).__name__}: {err})"), None, None, None
            return (
                text,
                None if measured is None else upscale(measured),
                None if heldout is None else upscale(heldout),
                montage,
            )

        check.click(
            slice_checks,
            [key_state, slider],
            [check_text, residual_measured, residual_heldout, coils],
            api_name="check",
            concurrency_limit=1,
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
