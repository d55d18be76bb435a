"""The original simulator's fixed presets (``tiny``/``small``/``full``): MNI anatomy with one random affine,
intensity warp and bias field per volume; sigpy birdcage coils; a smooth image phase; white noise.

The physics-randomised simulator is :mod:`mrirecon.data.randomsim`; both write through
:mod:`mrirecon.data.synth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mrirecon.data.sources import affine_slices, shift_anatomy
from mrirecon.physics import (
    cropped_birdcage_maps,
    sens_expand_np,
    unscaled_smooth_phase,
    white_noise,
    zero_filled_rss_np,
)


@dataclass(frozen=True)
class Preset:
    """Sizes of a simulated dataset. ``image`` is the target (h, w); k-space is (os*h, w)."""

    image: tuple[int, int]
    oversampling: int
    coils: tuple[int, int]  # inclusive range, drawn per volume
    slices: int
    n_train: int
    n_val: int
    n_test: int
    n_shift: int
    shift_coils: tuple[int, int] = (12, 16)
    shift_oversampling: int = 2
    snr: float = 100.0
    pixel_mm: float = 1.8


PRESETS: dict[str, Preset] = {
    # for unit tests: seconds to build
    "tiny": Preset((128, 128), 1, (8, 8), 2, 2, 1, 2, 1),
    # the default: CPU training of a small model takes minutes
    "small": Preset((128, 128), 1, (8, 8), 6, 20, 4, 4, 3),
    # fastMRI brain size: 16 coils, k-space 640x320, target 320x320, 16 slices
    "full": Preset((320, 320), 2, (16, 16), 16, 16, 4, 4, 3, shift_coils=(16, 16), pixel_mm=0.7),
}


def intensity_warp(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """A random piecewise-linear intensity map (knots x -> y) and its contrast label.

    Knots sit at the template's background, CSF, grey-matter and white-matter levels; T1-like maps
    keep the template's order, T2-like maps (30%) make fluid brightest and white matter darkest.
    """
    x = np.array([0.0, 0.08, 0.3, 0.62, 0.84, 1.0])
    if rng.random() < 0.3:
        csf, gm, wm = rng.uniform(0.8, 1.0), rng.uniform(0.5, 0.7), rng.uniform(0.3, 0.45)
        label = "T2"
    else:
        csf, gm, wm = rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.65), rng.uniform(0.75, 0.95)
        label = "T1"
    y = np.array([0.0, 0.4 * csf, csf, gm, wm, wm * rng.uniform(1.0, 1.08)])
    return x, y, label


def mni_anatomy(
    mni: np.ndarray, n_slices: int, image: tuple[int, int], pixel_mm: float, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """A stack of [n_slices, h, w] magnitude slices from the template, augmented; plus the acquisition name."""
    orient = rng.choice(["AX", "COR", "SAG"], p=[0.5, 0.25, 0.25])
    axis = {"AX": 2, "COR": 1, "SAG": 0}[orient]
    profile = (mni > 0.1).mean(axis=tuple(i for i in range(3) if i != axis))
    idx = np.flatnonzero(profile > 0.5 * profile.max())
    step = int(rng.integers(2, 5))
    span = step * (n_slices - 1)
    lo, hi = idx[0], max(idx[0], idx[-1] - span)
    start = int(rng.integers(lo, hi + 1))
    picks = [min(start + k * step, mni.shape[axis] - 1) for k in range(n_slices)]
    sl = np.moveaxis(np.take(mni, picks, axis=axis), axis, 0)  # [S, a, b]
    sl = np.ascontiguousarray(np.rot90(sl, k=1, axes=(1, 2)))  # superior/anterior up
    out = affine_slices(sl, image, 1.0, pixel_mm, rng, augment=True)
    xk, yk, contrast = intensity_warp(rng)
    out = np.interp(out, xk, yk).astype(np.float32)
    # smooth multiplicative bias field (receive/transmit inhomogeneity not captured by the coils)
    coarse = rng.normal(0, 0.12, size=(3, 3))
    bias = 1.0 + ndimage.zoom(coarse, (image[0] / 3, image[1] / 3), order=3)[: image[0], : image[1]]
    return out * np.clip(bias, 0.6, 1.4)[None], f"{orient}{contrast}"


def simulate_kspace(
    anatomy: np.ndarray, num_coils: int, oversampling: int, snr: float, peak: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy [S,h,w] -> (k-space complex64 [S,C,os*h,w], RSS target float32 [S,h,w]).

    The object is centred in a readout field of view ``oversampling`` times larger; ``peak`` sets
    the target maximum (fastMRI-like magnitudes); ``snr`` = mean object magnitude / noise std per coil.
    """
    S, h, w = anatomy.shape
    H = h * oversampling
    img = np.zeros((S, H, w), np.float32)
    top = (H - h) // 2
    img[:, top : top + h] = anatomy
    maps = cropped_birdcage_maps(num_coils, (H, w), (h, w), rng)
    phase = unscaled_smooth_phase((H, w), rng)
    img = img / max(float(img.max()), 1e-12) * peak
    fg = img[img > 0.1 * peak]
    sigma = float(fg.mean() if fg.size else peak) / snr
    kspace = sens_expand_np(img * np.exp(1j * phase)[None], maps)
    kspace = (kspace + white_noise(kspace.shape, sigma, rng)).astype(np.complex64)
    return kspace, zero_filled_rss_np(kspace, (h, w))


def simulate_preset(
    preset: Preset, split: str, mni: np.ndarray | None, shift_source: tuple | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int, str]:
    """One volume of ``split`` -> (k-space complex64 [S,C,H,W], target [S,h,w], coil count, acquisition name).

    ``shift`` takes the dipy ``shift_source`` with the preset's shift coils and oversampling; the other splits
    the MNI template ``mni``."""
    if split == "shift":
        anatomy, acq = shift_anatomy(shift_source, preset.slices, preset.image, preset.pixel_mm, rng)
        coils_lo, coils_hi = preset.shift_coils
        oversampling = preset.shift_oversampling
    else:
        anatomy, acq = mni_anatomy(mni, preset.slices, preset.image, preset.pixel_mm, rng)
        coils_lo, coils_hi = preset.coils
        oversampling = preset.oversampling
    num_coils = int(rng.integers(coils_lo, coils_hi + 1))
    peak = float(np.exp(rng.uniform(np.log(3e-4), np.log(1.2e-3))))
    kspace, target = simulate_kspace(anatomy, num_coils, oversampling, preset.snr, peak, rng)
    return kspace, target, num_coils, acq
