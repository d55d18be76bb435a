"""Random receive-coil sensitivity maps of several geometries: complex64 [C, H, W] on the field of view.

:func:`coil_maps` (the physics-randomised simulator): every model is evaluated on a coarse grid
(sensitivities are smooth) and interpolated bilinearly to the field of view, then given a smooth random
phase per coil, and scaled so that the root-sum-of-squares is 1 at its 95th percentile over the object:
the RSS keeps the array's shading, as a real RSS image does.

- ``birdcage``: sigpy's birdcage model with a random ring radius, centre, ellipticity and rotation;
- ``loops``: surface loops on a ring around the head, random loop radii, angular jitter and
  out-of-plane offsets (several rows), each a near-field loop with an on-axis 1/(a^2+d^2)^(3/2) fall-off;
- ``planar`` (held out of training; the physics-shift split): two flat parallel rows of loops in front of
  and behind the head, regularly spaced.

:func:`cropped_birdcage_maps` is the original simulator presets' model (a sigpy birdcage cropped at a
random offset, no extra phase or normalisation).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["COIL_MODELS", "coil_maps", "cropped_birdcage_maps", "smooth_coil_phase"]

COIL_MODELS = ("birdcage", "loops", "planar")
COARSE = 48  # coarse grid size along the longer axis


def _coarse_grid(grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (y, x) in units of the longer half-size: [h, w] each, on a coarse grid."""
    H, W = grid
    n = max(H, W)
    h, w = max(4, round(COARSE * H / n)), max(4, round(COARSE * W / n))
    y = np.linspace(-H / n, H / n, h)
    x = np.linspace(-W / n, W / n, w)
    return np.meshgrid(y, x, indexing="ij")


def _upsample(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Complex [C,h,w] -> [C,H,W] bilinear (align_corners keeps the coarse grid's extent)."""
    t = torch.from_numpy(np.stack([maps.real, maps.imag], 1).astype(np.float32))  # [C,2,h,w]
    up = F.interpolate(t, size=grid, mode="bilinear", align_corners=True).numpy()
    return (up[:, 0] + 1j * up[:, 1]).astype(np.complex64)


def _birdcage(num_coils: int, yy: np.ndarray, xx: np.ndarray, obj_half: float, rng) -> np.ndarray:
    import sigpy.mri  # simulators only: importing the physics package stays light
    from scipy import ndimage

    n, ring = 64, 0.8
    radius = rng.uniform(1.05, 1.6) * obj_half
    square = np.nan_to_num(sigpy.mri.birdcage_maps((num_coils, n, n), r=ring, dtype=np.complex64))
    # sigpy puts the coils on a ring of radius ``ring`` of its [-1, 1] grid; map our coordinates onto it
    theta = rng.uniform(0, 2 * np.pi)
    ell = rng.uniform(0.8, 1.25)
    cy, cx = rng.uniform(-0.08, 0.08, size=2) * obj_half
    c, s = np.cos(theta), np.sin(theta)
    u = (c * (yy - cy) - s * (xx - cx)) / (radius * ell)
    v = (s * (yy - cy) + c * (xx - cx)) * ell / radius
    idx = np.stack([(ring * u + 1) * (n - 1) / 2, (ring * v + 1) * (n - 1) / 2]).reshape(2, -1)
    out = np.empty((num_coils, *yy.shape), np.complex64)
    for k in range(num_coils):
        re = ndimage.map_coordinates(square[k].real, idx, order=1, mode="nearest")
        im = ndimage.map_coordinates(square[k].imag, idx, order=1, mode="nearest")
        out[k] = (re + 1j * im).reshape(yy.shape)
    return out


def _loop(yy, xx, cy, cx, normal_angle, radius, dz, phase0) -> np.ndarray:
    """One surface loop centred at (cy, cx), facing the angle ``normal_angle``, ``dz`` out of plane."""
    dy, dx = yy - cy, xx - cx
    d2 = dy**2 + dx**2 + dz**2
    mag = radius**3 / (radius**2 + d2) ** 1.5
    # the received field's phase turns with the direction from the loop (circular polarisation)
    direction = np.arctan2(dy, dx) - normal_angle
    return (mag * np.exp(1j * (phase0 + direction))).astype(np.complex64)


def _loops(num_coils: int, yy, xx, obj_half: float, rng) -> np.ndarray:
    rows = int(rng.integers(1, 4)) if num_coils >= 8 else 1
    per_row = int(np.ceil(num_coils / rows))
    a_y, a_x = rng.uniform(1.05, 1.35, size=2) * obj_half
    out = []
    for k in range(num_coils):
        row, pos = divmod(k, per_row)
        angle = 2 * np.pi * (pos + rng.uniform(-0.2, 0.2)) / per_row + row * np.pi / per_row
        cy, cx = a_y * np.sin(angle), a_x * np.cos(angle)
        dz = (row - (rows - 1) / 2) * rng.uniform(0.3, 0.6) * obj_half
        radius = rng.uniform(0.25, 0.6) * obj_half
        out.append(_loop(yy, xx, cy, cx, angle + np.pi, radius, dz, rng.uniform(0, 2 * np.pi)))
    return np.stack(out)


def _planar(num_coils: int, yy, xx, obj_half: float, rng) -> np.ndarray:
    front = num_coils // 2
    out = []
    for k in range(num_coils):
        side, pos = (0, k) if k < front else (1, k - front)
        count = front if side == 0 else num_coils - front
        cx = (pos - (count - 1) / 2) * 2.2 * obj_half / max(count, 1)
        cy = (-1.0 if side == 0 else 1.0) * rng.uniform(1.15, 1.3) * obj_half
        radius = rng.uniform(0.3, 0.45) * obj_half
        normal = np.pi / 2 if side == 0 else -np.pi / 2
        out.append(_loop(yy, xx, cy, cx, normal, radius, 0.0, rng.uniform(0, 2 * np.pi)))
    return np.stack(out)


def smooth_coil_phase(num_coils: int, shape: tuple[int, int], amplitude: float, rng) -> np.ndarray:
    """Per-coil smooth phase [C,h,w] (radians): a random quadratic surface with coefficients up to ``amplitude``."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    basis = np.stack([y, x, y * x, y**2, x**2])  # [5,h,w]
    coeffs = rng.uniform(-amplitude, amplitude, size=(num_coils, 5)) / 2
    return np.einsum("ck,khw->chw", coeffs, basis).astype(np.float32)


def coil_maps(
    model: str,
    num_coils: int,
    grid: tuple[int, int],
    obj: tuple[int, int],
    rng: np.random.Generator,
    phase_amplitude: float = 1.0,
) -> np.ndarray:
    """Sensitivities [C,H,W] complex64 of ``model`` on the field of view ``grid`` for an object of ``obj`` pixels."""
    if model not in COIL_MODELS:
        raise ValueError(f"unknown coil model {model!r}; choose one of {', '.join(COIL_MODELS)}")
    yy, xx = _coarse_grid(grid)
    obj_half = max(obj) / max(grid)  # object half-size in units of the grid's longer half-size
    build = {"birdcage": _birdcage, "loops": _loops, "planar": _planar}[model]
    maps = build(num_coils, yy, xx, obj_half, rng)
    maps = maps * np.exp(1j * smooth_coil_phase(num_coils, yy.shape, phase_amplitude, rng))
    maps = _upsample(maps, grid)
    rss = np.sqrt((np.abs(maps) ** 2).sum(0))
    H, W = grid
    h, w = obj
    centre = rss[(H - h) // 2 : (H - h) // 2 + h, (W - w) // 2 : (W - w) // 2 + w]
    return (maps / max(float(np.percentile(centre, 95)), 1e-12)).astype(np.complex64)


def cropped_birdcage_maps(
    num_coils: int, grid: tuple[int, int], obj: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Birdcage maps [C, H, W] (complex64, RSS = 1) with a random ring radius and centre.

    The ring radius is 1.05-1.6x the object half-size; the ring centre moves by up to 8% of it.
    """
    import sigpy.mri

    H, W = grid
    half = max(obj) / 2
    margin = int(np.ceil(0.08 * max(obj)))
    n = max(H, W) + 2 * margin
    radius = rng.uniform(1.05, 1.6) * half / (n / 2)
    maps = sigpy.mri.birdcage_maps((num_coils, n, n), r=radius, dtype=np.complex64)
    maps = np.nan_to_num(maps)
    if rng.random() < 0.5:
        maps = maps[:, ::-1]
    if rng.random() < 0.5:
        maps = maps[:, :, ::-1]
    dy, dx = rng.integers(-margin, margin + 1, size=2)
    y0, x0 = (n - H) // 2 + dy, (n - W) // 2 + dx
    return np.ascontiguousarray(maps[:, y0 : y0 + H, x0 : x0 + W])
