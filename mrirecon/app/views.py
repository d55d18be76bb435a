"""The app's images, computed from arrays (no Gradio here): grey panels with a window, the error map,
linked zoom, the k-space and mask views, the maps of the consistency figure and the comparison PNG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import write_atomically
from .cache import Entry

ERROR_GAIN = 5  # the error map shows |recon - reference| x ERROR_GAIN
ERROR_PANEL = f"|error| x {ERROR_GAIN}"
PANEL_NAMES = ("zero-filled", "reconstruction", "reference", ERROR_PANEL)  # the comparison panels, in order
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
# the panels of a reconstruction


def consistency_images(check: Any, measured: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The residual on measured lines and the error on held-out lines of a
    :class:`~mrirecon.app.consistency.SliceConsistency`, each uint8 [H,W] on the log scale of the k-space view
    (``measured``: the slice's measured k-space complex [C,H,W] after the readout crop)."""
    top = float(np.sqrt((np.abs(measured) ** 2).sum(axis=0)).max())
    full = float(np.log1p(KSPACE_RANGE))
    return tuple(to_uint8(log_kspace(m, top), full) for m in (check.measured_map, check.heldout_map))


def slice_images(
    entry: Entry, s: int, window: tuple[float, float] = (0.0, 100.0), view: View | None = None
) -> dict[str, np.ndarray | None]:
    """The four panels of slice ``s`` at full resolution, or the part ``view`` zooms to (not enlarged);
    ``window`` = (black, white) in percent of the volume maximum (the error map keeps its fixed scale)."""
    res, s = entry.result, entry.slice_index(s)
    ref = res.target[s] if res.target is not None else None
    scale = float(res.target.max()) if res.target is not None else float(res.recon.max())
    panels = {
        "zero-filled": to_uint8(res.zero_filled[s], scale, window),
        "reconstruction": to_uint8(res.recon[s], scale, window),
        "reference": to_uint8(ref, scale, window) if ref is not None else None,
        ERROR_PANEL: error_rgb(res.recon[s], ref, scale) if ref is not None else None,
    }
    if view is None:
        return panels
    return {name: None if img is None else view.apply(img, min_size=1) for name, img in panels.items()}


def kspace_image(entry: Entry, s: int) -> np.ndarray | None:
    """Log magnitude of the measured k-space of slice ``s`` (coil RSS) as uint8; dark columns were not
    acquired."""
    if entry.kspace_log is None:
        return None
    return to_uint8(entry.kspace_log[entry.slice_index(s)], float(entry.kspace_log.max()))


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
