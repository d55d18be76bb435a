"""Where the noise floor should read its level: the cropped k-space or the readout rows the crop removes.

For every file of the validation sets (never a test split) with a target: the level the floor fills an empty
image to, over the target's own level in the air (pixels at least 8 pixels from every pixel whose 5 x 5 mean is above
2 % of the volume's maximum, as in ``background_floor.py``), mean over the slices. ``kspace rms``: read off the
outer readout frequencies of the cropped k-space (``noise_floor_source=kspace``), over the air's RMS;
``margin rms``: off the rows the crop to the target removes (``readout_margin``), over the air's RMS; ``margin
mean``: the same at the noise magnitude's mean (``noise_floor_level=mean``), over the air's mean. 1.00 is exact.
Files without readout oversampling have no margin (the floor is off there in the product).
Usage (repository root): python experiments/floor_noise_sources.py [SET_DIR:TRUTH_DIR ...]
"""

import sys
from pathlib import Path

import h5py
import numpy as np
import torch
from scipy import ndimage

from mrirecon.physics import crop_readout, readout_margin_noise, restore_noise_floor

SETS = [
    "data/select_physics/physics_test_format:data/select_physics/physics_truth",
    "data/select_random/test_format:data/select_random/test_truth",
    "data/select_random-coarse-voxels/test_format:data/select_random-coarse-voxels/test_truth",
    "data/select_real/shift_test_format:data/select_real/shift_truth",
    "data/val_random/val:data/val_random/val",
]


def air(target: np.ndarray) -> np.ndarray:
    """target [S,h,w] -> bool [S,h,w]: far from every pixel whose 5 x 5 mean is above 2 % of the maximum."""
    near = ndimage.uniform_filter(target, size=(1, 5, 5)) > 0.02 * target.max()
    return ~ndimage.binary_dilation(near, np.ones((1, 17, 17), bool))


def main(sets: list[str]) -> None:
    print(f"{'set':<28} {'file':<26} {'kspace':>12} coils  kspace rms  margin rms  margin mean")
    for entry in sets:
        data, truth = (Path(p) for p in entry.split(":"))
        for path in sorted(data.glob("*.h5")):
            with h5py.File(path, "r") as f:
                kspace = f["kspace"][()]
                mask = f["mask"][()].astype(bool) if "mask" in f else np.ones(kspace.shape[-1], bool)
            with h5py.File(truth / path.name, "r") as f:
                target = f["reconstruction_rss"][()]
            head = f"{data.parent.name:<28} {path.name:<26} {str(kspace.shape[-2:]):>12} {kspace.shape[1]:>5}"
            measured = torch.view_as_real(torch.from_numpy((kspace * mask).astype(np.complex64)))
            height = target.shape[-2]
            outside, samples = air(target), readout_margin_noise(measured, height)
            if samples is None or not outside.any():
                print(f"{head}  no margin")
                continue
            cropped = crop_readout(measured, height)
            empty = torch.zeros(kspace.shape[0], height, kspace.shape[-1])
            levels = [
                restore_noise_floor(empty, cropped),
                restore_noise_floor(empty, cropped, noise_samples=samples),
                restore_noise_floor(empty, cropped, noise_samples=samples, level="mean"),
            ]
            rms = np.array([np.sqrt(np.mean(t[a] ** 2)) for t, a in zip(target, outside)])
            mean = np.array([t[a].mean() for t, a in zip(target, outside)])
            ratios = [(lv.mean((1, 2)).numpy() / ref).mean() for lv, ref in zip(levels, (rms, rms, mean))]
            print(f"{head} {ratios[0]:>11.3f} {ratios[1]:>11.3f} {ratios[2]:>12.3f}")


if __name__ == "__main__":
    main(sys.argv[1:] or SETS)
