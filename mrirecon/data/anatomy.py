"""Randomised brain anatomy from the MNI152 2009a grey- and white-matter probability maps (nilearn).

The template nilearn ships is skull-stripped, and there is no CSF map, so the other classes are made
from the distance d (mm) outside the filled brain mask: CSF = the brain mask grown by ~2 mm (ventricles
and sulci) less grey and white matter; skull = a band of random thickness beyond it; scalp (fat and
skin) = the next band. A slice stack is cut from the 3-D maps along a randomly rotated, scaled and
elastically deformed plane in one of three orientations, then given random tissue signals (T1-, T2-,
PD- or FLAIR-like) and a smooth bias field.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

TISSUE_FILES = {
    "gm": "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
TEMPLATE_SHAPE = (197, 233, 189)  # 1 mm voxels, x=L-R, y=P-A, z=I-S

# Relative tissue signals per contrast (uniform ranges, before the bias field): grey, white, CSF, skull, scalp.
CONTRASTS: dict[str, dict[str, tuple[float, float]]] = {
    "T1": {"gm": (0.50, 0.65), "wm": (0.80, 1.00), "csf": (0.08, 0.30), "skull": (0.02, 0.10), "scalp": (0.7, 1.0)},
    "T2": {"gm": (0.50, 0.70), "wm": (0.30, 0.45), "csf": (0.85, 1.00), "skull": (0.02, 0.08), "scalp": (0.5, 0.9)},
    "PD": {"gm": (0.80, 0.95), "wm": (0.60, 0.75), "csf": (0.75, 0.95), "skull": (0.03, 0.12), "scalp": (0.6, 0.9)},
    "FLAIR": {"gm": (0.70, 0.90), "wm": (0.45, 0.60), "csf": (0.02, 0.10), "skull": (0.02, 0.08), "scalp": (0.5, 0.9)},
}

# In-plane row/column directions and slice normal in template voxel axes (x=L-R, y=P-A, z=I-S);
# rows run top to bottom (anterior or superior at the top).
ORIENTATIONS = {
    "AX": (np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    "COR": (np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
    "SAG": (np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0])),
}


@functools.lru_cache(maxsize=1)
def load_tissues() -> dict[str, np.ndarray]:
    """gm, wm [197,233,189] float32 in [0, 1]; dist [99,117,95] float32: mm outside the filled brain mask
    on a 2 mm grid (0 inside); centre: the brain's bounding-box centre in voxels; half: its half-extent."""
    import nibabel as nib

    from mrirecon.data.sources import package_dir

    root = package_dir("nilearn")
    maps = {k: np.asarray(nib.load(str(root / p)).dataobj, dtype=np.float32) / 255.0 for k, p in TISSUE_FILES.items()}
    gm, wm = np.clip(maps["gm"], 0, 1), np.clip(maps["wm"], 0, 1)
    coarse = ndimage.binary_fill_holes((gm + wm)[::2, ::2, ::2] > 0.3)
    dist = ndimage.distance_transform_edt(~coarse, sampling=2.0).astype(np.float32)
    brain = np.argwhere(gm + wm > 0.5)
    lo, hi = brain.min(0), brain.max(0)
    return {"gm": gm, "wm": wm, "dist": dist, "centre": (lo + hi) / 2.0, "half": (hi - lo) / 2.0}


@dataclass(frozen=True)
class SliceGeometry:
    """Where a slice stack is cut: orientation, rotation (degrees about x, y, z), per-axis scale, shift of
    the centre in mm, slice gap in mm, elastic displacement std in mm."""

    orientation: str
    rotation_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    centre_mm: tuple[float, float, float]
    gap_mm: float
    elastic_mm: float


def _rotation(deg: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def sample_coordinates(
    geometry: SliceGeometry, n_slices: int, grid: tuple[int, int], pixel_mm: float, rng: np.random.Generator
) -> np.ndarray:
    """Template voxel coordinates of every output pixel: [3, S, H, W] (float32).

    The plane through the brain centre (+ ``centre_mm``) is scaled and rotated, then displaced by a
    smooth random 3-D field (cubic interpolation of a 5x5x5 grid of normal draws, std ``elastic_mm``).
    """
    H, W = grid
    rows, cols, normal = ORIENTATIONS[geometry.orientation]
    r = (np.arange(H) - (H - 1) / 2) * pixel_mm
    c = (np.arange(W) - (W - 1) / 2) * pixel_mm
    s = (np.arange(n_slices) - (n_slices - 1) / 2) * geometry.gap_mm
    pts = (
        s[:, None, None, None] * normal + r[None, :, None, None] * rows + c[None, None, :, None] * cols
    )  # [S,H,W,3] mm in the template frame
    pts = pts * np.asarray(geometry.scale)
    pts = pts @ _rotation(geometry.rotation_deg).T
    template = np.array(TEMPLATE_SHAPE, dtype=np.float64)
    pts = pts + load_tissues()["centre"] + np.asarray(geometry.centre_mm)  # 1 mm voxels
    coords = np.moveaxis(pts, -1, 0).astype(np.float32)  # [3,S,H,W]
    if geometry.elastic_mm > 0:
        # the field is smooth on a ~40 mm scale: evaluate it every 8th pixel and interpolate bilinearly
        coarse = rng.normal(0.0, geometry.elastic_mm, size=(3, 5, 5, 5)).astype(np.float32)
        knots = coords[:, :, ::8, ::8]
        where = (knots / (template - 1).reshape(3, 1, 1, 1).astype(np.float32) * 4.0).reshape(3, -1)
        disp = np.stack([ndimage.map_coordinates(coarse[a], where, order=3, mode="nearest") for a in range(3)])
        disp = torch.from_numpy(disp.reshape(3, *knots.shape[1:])).permute(1, 0, 2, 3)  # [S,3,h,w]
        full = F.interpolate(disp, size=(H, W), mode="bilinear", align_corners=False)
        coords += full.permute(1, 0, 2, 3).numpy()
    return coords


def tissue_slices(coords: np.ndarray, skull_mm: float, scalp_mm: float) -> dict[str, np.ndarray]:
    """Tissue fractions at the coordinates [3,S,H,W] -> {gm, wm, csf, skull, scalp: [S,H,W] float32}."""
    flat = coords.reshape(3, -1)
    shape = coords.shape[1:]
    t = load_tissues()
    # only points inside the template are interpolated (with readout oversampling, half the grid is air)
    inside_box = np.all((flat >= 0) & (flat <= np.array(TEMPLATE_SHAPE, np.float32)[:, None] - 1), axis=0)
    pts = flat[:, inside_box]
    gm, wm = np.zeros(flat.shape[1], np.float32), np.zeros(flat.shape[1], np.float32)
    d = np.full(flat.shape[1], 1e3, np.float32)
    gm[inside_box] = ndimage.map_coordinates(t["gm"], pts, order=1, mode="constant")
    wm[inside_box] = ndimage.map_coordinates(t["wm"], pts, order=1, mode="constant")
    d[inside_box] = ndimage.map_coordinates(t["dist"], pts / 2.0, order=1, mode="nearest")
    gm, wm, d = gm.reshape(shape), wm.reshape(shape), d.reshape(shape)

    def inside(r: float) -> np.ndarray:  # soft indicator of d < r (1 mm edge)
        return np.clip(r + 0.5 - d, 0.0, 1.0)

    csf_edge = 2.0
    brain = inside(csf_edge)
    skull = inside(csf_edge + skull_mm) - brain
    scalp = inside(csf_edge + skull_mm + scalp_mm) - inside(csf_edge + skull_mm)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    return {"gm": gm, "wm": wm, "csf": csf, "skull": skull, "scalp": scalp}


def contrast_image(tissues: dict[str, np.ndarray], contrast: str, rng: np.random.Generator) -> np.ndarray:
    """Magnitude image [S,H,W] from tissue fractions with signals drawn from ``CONTRASTS[contrast]``."""
    img = sum(float(rng.uniform(*rg)) * tissues[name] for name, rg in CONTRASTS[contrast].items())
    return np.clip(img, 0, None).astype(np.float32)


def bias_field(shape: tuple[int, int], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field [H,W]: exp of a cubic 4x4 random field scaled to max |log| = amplitude."""
    H, W = shape
    coarse = rng.normal(size=(4, 4))
    field = ndimage.zoom(coarse, (H / 4, W / 4), order=3, mode="nearest")[:H, :W]
    field = field / max(float(np.abs(field).max()), 1e-12) * amplitude
    return np.exp(field).astype(np.float32)


def brain_slices(
    n_slices: int,
    grid: tuple[int, int],
    pixel_mm: float,
    geometry: SliceGeometry,
    contrast: str,
    bias_amplitude: float,
    skull_mm: float,
    scalp_mm: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A randomised magnitude slice stack [S,H,W] float32 on a ``grid`` of ``pixel_mm`` pixels."""
    coords = sample_coordinates(geometry, n_slices, grid, pixel_mm, rng)
    img = contrast_image(tissue_slices(coords, skull_mm, scalp_mm), contrast, rng)
    return img * bias_field(grid, bias_amplitude, rng)[None]
