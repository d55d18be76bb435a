"""How well the k-space noise estimate behind the default's noise floor matches each split's true floor.

For every 4x test-format file of DATA_DIR: sqrt(C sigma^2), sigma^2 from ``physics.kspace_noise_variance`` (the
outer readout frequencies of all measured lines, and of their outer quarter, as the noise floor reads it), against
the target's mean in its four 12 x 12 corners (pure noise away from the anatomy), relative to the target volume's
maximum; and each estimate over the corners' level (about 1.01 for a pure-noise floor). The estimate holds where
the readout is oversampled (the outer frequencies carry only noise); without oversampling they still carry signal.
A third column tries an estimate that needs no oversampling (not used by the package; default_v20): the
calibration lines (the contiguous sampled centre, Hann-windowed across them) as low-resolution coil images, whose
summed power over the coils is noise alone in the air; its 10 % quantile over the pixels, over that of a
Gamma(C) variable, gives the per-coil noise power.
Usage (repository root): python experiments/noise_level_check.py [DATA_DIR] (default data/random_eval).
"""

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import torch
from scipy import stats

from mrirecon.io import read_volume
from mrirecon.physics import kspace_noise_variance
from mrirecon.physics.noise import FLOOR_NOISE_LINES


def calibration_noise_variance(kspace: np.ndarray, mask: np.ndarray, quantile: float = 0.1) -> float:
    """sigma^2 per sample from the calibration lines: kspace complex [S,C,H,W] (zero off the mask), mask bool [W]."""
    W, lo, hi = len(mask), len(mask) // 2, len(mask) // 2
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi < W - 1 and mask[hi + 1]:
        hi += 1
    window = np.hanning(hi - lo + 3)[1:-1]
    lines = np.fft.ifftshift(kspace[..., lo : hi + 1] * window, axes=(-2, -1))
    power = np.square(np.abs(np.fft.ifft2(lines, norm="ortho"))).sum(axis=1)  # [S,H,n], noise: Gamma(C) x sigma^2 w^2
    coils = kspace.shape[1]
    return float(np.quantile(power, quantile) / stats.gamma(coils).ppf(quantile) / np.mean(window**2))


SPLITS = {"test_format": "test_truth", "physics_test_format": "physics_truth", "shift_test_format": "shift_truth"}


def main(root: Path) -> None:
    print(
        "split                file                      matrix (kspace, target)  coils  corners  all lines (ratio)"
        "  outer quarter (ratio)  calibration lines (ratio)"
    )
    for split, truth in SPLITS.items():
        for path in sorted((root / split).glob("*acc4.h5")):
            volume = read_volume(path)
            with h5py.File(root / truth / path.name, "r") as f:
                target = f["reconstruction_rss"][()]
            with h5py.File(path, "r") as f:
                matrix = json.loads(f.attrs["synth_params"])["matrix"]
            measured = torch.view_as_real(torch.from_numpy(volume.kspace * volume.mask.astype(bool)))
            level = [
                np.sqrt(measured.shape[1] * kspace_noise_variance(measured, outer_lines=lines).numpy()).mean()
                for lines in (None, FLOOR_NOISE_LINES)
            ]
            mask = volume.mask.astype(bool)
            level.append(np.sqrt(measured.shape[1] * calibration_noise_variance(volume.kspace * mask, mask)))
            c = 12
            corners = np.concatenate([target[:, :c, :c], target[:, :c, -c:], target[:, -c:, :c], target[:, -c:, -c:]])
            peak, floor = target.max(), corners.mean()
            print(
                f"{split:<20} {path.name:<25} {str(matrix):<24} {measured.shape[1]:>5}  {100 * floor / peak:6.2f}%"
                + "".join(f"  {100 * x / peak:9.2f}% ({x / floor:4.2f})  " for x in level)
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/random_eval"))
