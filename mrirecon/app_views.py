"""The app's images and texts, computed from arrays (no Gradio here): grey panels with a window, the
error map, linked zoom, the k-space and mask views, the reference-free consistency figure, the test-time
adaptation note and the comparison PNG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io.files import write_atomically

ERROR_GAIN = 5  # the error map shows |recon - reference| x ERROR_GAIN
PANEL_PIXELS = 512  # panels are enlarged (nearest neighbour) to at least this many pixels per side
MAX_ZOOM = 8.0
KSPACE_RANGE = 1e4  # log(1 + x * KSPACE_RANGE) of k-space scaled to its maximum: the visible dynamic range


# ----------------------------------------------------------------------------------------------
# grey levels and colours


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


def log_kspace(magnitude: np.ndarray, top: float) -> np.ndarray:
    """k-space magnitude -> log(1 + |k| / top x KSPACE_RANGE), the scale of every k-space view."""
    return np.log1p(np.asarray(magnitude, np.float32) / max(float(top), 1e-20) * KSPACE_RANGE).astype(np.float32)


def measured_kspace_log(kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """log(1 + coil-RSS magnitude) of measured k-space complex [S,C,H,W] under ``mask`` [W] -> float32 [S,H,W]."""
    rss = np.sqrt((np.abs(kspace * np.asarray(mask, bool)) ** 2).sum(axis=1))
    return log_kspace(rss, float(rss.max()))


def crop_readout_np(kspace: np.ndarray, height: int) -> np.ndarray:
    """complex [..., H, W] -> [..., min(H, height), W]: the readout field of view cut to ``height`` rows
    (:func:`mrirecon.physics.crop_readout` on numpy data)."""
    import torch

    from .physics import crop_readout

    k = torch.view_as_real(torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)))
    return torch.view_as_complex(crop_readout(k, int(height)).contiguous()).numpy()


# ----------------------------------------------------------------------------------------------
# linked zoom


@dataclass(frozen=True)
class View:
    """One zoom shared by every comparison panel: ``zoom`` >= 1 and the centre of the view in percent of
    the image width (``cx``, left to right) and height (``cy``, top to bottom)."""

    zoom: float = 1.0
    cx: float = 50.0
    cy: float = 50.0

    @classmethod
    def of(cls, zoom: Any, cx: Any, cy: Any) -> View:
        """From control values (None = default), clipped to their ranges."""

        def pick(value: Any, default: float, lo: float, hi: float) -> float:
            return float(np.clip(default if value is None else float(value), lo, hi))

        return cls(pick(zoom, 1.0, 1.0, MAX_ZOOM), pick(cx, 50.0, 0.0, 100.0), pick(cy, 50.0, 0.0, 100.0))

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Rows and columns shown, (top, bottom, left, right): a window of 1/zoom of each side centred on
        (cy, cx) and moved inside the image where the centre is too close to an edge."""
        h, w = max(1, math.ceil(height / self.zoom)), max(1, math.ceil(width / self.zoom))
        top = int(np.clip(round(self.cy / 100.0 * height - h / 2), 0, height - h))
        left = int(np.clip(round(self.cx / 100.0 * width - w / 2), 0, width - w))
        return top, top + h, left, left + w

    def apply(self, img: np.ndarray, min_size: int = PANEL_PIXELS) -> np.ndarray:
        """The zoomed part of ``img`` [H,W] or [H,W,3], enlarged (nearest neighbour, pixels stay square
        blocks) to at least ``min_size`` per side."""
        top, bottom, left, right = self.box(*img.shape[:2])
        return upscale(img[top:bottom, left:right], min_size)

    def centred_on(self, shown_shape: tuple[int, ...], xy: tuple[float, float], image_shape: tuple[int, ...]) -> View:
        """The view centred where a panel of ``shown_shape`` (the enlarged zoomed image) was clicked, at
        pixel ``xy`` = (x, y) of that panel; zooms in 2x when the view was not zoomed."""
        top, bottom, left, right = self.box(*image_shape[:2])
        y = top + (float(xy[1]) + 0.5) / shown_shape[0] * (bottom - top)
        x = left + (float(xy[0]) + 0.5) / shown_shape[1] * (right - left)
        return View.of(
            max(self.zoom, 2.0), x / image_shape[1] * 100.0, y / image_shape[0] * 100.0
        )  # fmt: skip

    @property
    def label(self) -> str:
        return "" if self.zoom == 1.0 else f"zoom {self.zoom:g}x at ({self.cx:.0f} %, {self.cy:.0f} %)"


# ----------------------------------------------------------------------------------------------
# reference-free consistency and test-time adaptation


def consistency_images(check: Any, measured: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The residual on measured lines and the error on held-out lines of a
    :class:`~mrirecon.consistency.SliceConsistency`, each uint8 [H,W] on the log scale of the k-space view
    (``measured``: the slice's measured k-space complex [C,H,W] after the readout crop)."""
    top = float(np.sqrt((np.abs(measured) ** 2).sum(axis=0)).max())
    full = float(np.log1p(KSPACE_RANGE))
    return tuple(to_uint8(log_kspace(m, top), full) for m in (check.measured_map, check.heldout_map))


def consistency_text(check: Any, s: int, adapted: bool = False) -> str:
    """Markdown of the two reference-free numbers of slice ``s``."""
    text = (
        f"**Consistency with the measured data, slice {s}** (no reference needed): residual on the measured "
        f"lines **{check.measured_error:.4f}** (relative L1: what data consistency leaves); error on "
        f"{check.heldout_lines} held-out measured lines predicted from the others **{check.heldout_error:.4f}** "
        "(1.0 = no better than zeros; the split test-time adaptation learns from)."
    )
    if adapted:
        text += " Computed with the network before the scan's adaptation."
    return text


def tta_text(report: Any, requested_steps: int = 0) -> str:
    """Markdown of test-time adaptation's before/after numbers (:class:`~mrirecon.adapt.tta.TTAReport`; the
    newer fields ``used``, ``params`` and ``seconds`` are read when present), or why there are none."""
    if report is None:
        if requested_steps:
            return f"**Test-time adaptation**: asked for {requested_steps} steps, but no report came back."
        return "**Test-time adaptation**: off (set TTA steps above 0 to adapt the codec to this scan)."
    before, after = float(report.stop_error_before), float(report.stop_error_after)
    change = (after - before) / max(before, 1e-20) * 100.0
    used = getattr(report, "used", None)
    if used is None:  # reports without the field: the unadapted start is kept when no step improved on it
        used = report.best_step > 0
    params, seconds = getattr(report, "params", None), getattr(report, "seconds", None)
    verdict = (
        "**yes**, the adapted result is shown"
        if used
        else "**no**, the unadapted result is shown (adaptation did not lower the held-out error)"
    )
    lines = [
        f"**Test-time adaptation**: held-out k-space error **{before:.6f} before → {after:.6f} after** "
        f"({change:+.3f} %)",
        f"{report.steps_run} steps run, best at step {report.best_step}"
        + (f", parameters adapted: {params}" if params else "")
        + (f", {float(seconds):.1f} s" if seconds else ""),
        f"adapted result used: {verdict}",
    ]
    return "  \n".join(lines)


# ----------------------------------------------------------------------------------------------
# the comparison PNG


def gray_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def comparison_png(panels: list[tuple[str, np.ndarray]], path: Path) -> Path:
    """Panels side by side with their titles above, saved as PNG (written atomically)."""
    from PIL import Image, ImageDraw

    h = max(p.shape[0] for _, p in panels)
    scale = max(1, 256 // h)
    tiles = [np.kron(gray_rgb(p), np.ones((scale, scale, 1), np.uint8)) for _, p in panels]
    gap, title = 8, 18
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) + 1)
    canvas = Image.new("RGB", (width, h * scale + title + 2 * gap), "black")
    draw = ImageDraw.Draw(canvas)
    x = gap
    for (name, _), tile in zip(panels, tiles, strict=True):
        draw.text((x, gap // 2), name, fill="white")
        canvas.paste(Image.fromarray(tile), (x, title + gap))
        x += tile.shape[1] + gap
    return write_atomically(path, lambda tmp: canvas.save(tmp, format="PNG"))
