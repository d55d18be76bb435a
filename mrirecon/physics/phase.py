"""Smooth random image phase (the object's own phase, before the coils): float32 radians [H, W].

Both are a cubic interpolation of a 4x4 Gaussian field plus a linear ramp; :func:`smooth_phase` scales it
to a given amplitude (the physics-randomised simulator), :func:`unscaled_smooth_phase` leaves it at unit
standard deviation (the original simulator presets).
"""

from __future__ import annotations

import numpy as np

__all__ = ["smooth_phase", "unscaled_smooth_phase"]


def smooth_phase(shape: tuple[int, int], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random phase [H,W] (radians): a cubic 4x4 field scaled to max |phase| = ``amplitude``/2,
    plus a linear ramp of up to ``amplitude``/2 at the edges."""
    from scipy import ndimage  # simulators only: importing the physics package stays light

    H, W = shape
    field = ndimage.zoom(rng.normal(size=(4, 4)), (H / 4, W / 4), order=3, mode="nearest")[:H, :W]
    field = field / max(float(np.abs(field).max()), 1e-12)
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    ramp = rng.uniform(-1, 1) * yy + rng.uniform(-1, 1) * xx
    return (amplitude / 2 * (field + ramp / 2)).astype(np.float32)


def unscaled_smooth_phase(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random phase map [H, W] in radians (a unit-variance low-order field plus a linear ramp)."""
    from scipy import ndimage

    H, W = shape
    coarse = rng.normal(0, 1.0, size=(4, 4))
    field = ndimage.zoom(coarse, (H / 4, W / 4), order=3)[:H, :W]
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    ramp = rng.uniform(-1, 1) * yy + rng.uniform(-1, 1) * xx
    return (field + ramp).astype(np.float32)
