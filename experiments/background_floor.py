"""Background level of learned reconstructions against the target's, per test-format split.

Background: pixels under 2% of the target volume's maximum. Printed: their mean in the reconstruction and in
the target, relative to the volume maximum, averaged over the split's files. A reconstruction that paints a
glow over the background (SSIM's luminance term then collapses there) shows a recon level above the target's.
The same for the air alone: background pixels at least 8 pixels away from every pixel whose 5 x 5 mean in the
target is above 2% (the noise floor without the object's edges, where blur and the selection of pixels by the
target's own noise also raise the first number).
Usage (repository root): python experiments/background_floor.py [DATA_DIR] (default data/random_eval).
"""

import sys
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage

from mrirecon.api import Reconstructor
from mrirecon.io import read_volume
from mrirecon.metrics import center_crop_to

CODECS = {"ours": "codecs/default", "e2e-varnet": "runs/varnet_default/codec", "u-net": "runs/unet_default/codec"}
SPLITS = {"test_format": "test_truth", "physics_test_format": "physics_truth", "shift_test_format": "shift_truth"}


def main(root: Path) -> None:
    found = {name: path for name, path in CODECS.items() if Path(path, "card.json").is_file()}
    if len(found) < len(CODECS):  # the GPU-trained baselines are not committed (results/default_v18)
        print(f"not found, left out: {', '.join(f'{n} ({p})' for n, p in CODECS.items() if n not in found)}")
    recs = {name: Reconstructor.from_checkpoint(path, device="cpu") for name, path in found.items()}
    for split, truth in SPLITS.items():
        levels: dict[str, list[tuple[float, float]]] = {}
        for path in sorted((root / split).glob("*.h5")):
            volume = read_volume(path)
            with h5py.File(root / truth / path.name, "r") as f:
                target = f["reconstruction_rss"][()]
            peak = target.max()
            background = target < 0.02 * peak
            near_object = ndimage.uniform_filter(target, size=(1, 5, 5)) > 0.02 * peak
            air = ~ndimage.binary_dilation(near_object, np.ones((1, 17, 17), bool))
            for name, rec in recs.items():
                recon = center_crop_to(rec.reconstruct_volume(volume).recon, target.shape[-2:])
                means = [
                    region_mean / peak
                    for mask in (background, air)
                    for region_mean in (recon[mask].mean(), target[mask].mean())
                ]
                levels.setdefault(name, []).append(means)
        for name, rows in levels.items():
            rb, tb, ra, ta = np.mean(rows, axis=0) * 100
            both = f"recon {rb:.2f}%  target {tb:.2f}%   air: recon {ra:.2f}%  target {ta:.2f}%"
            print(f"{split:20s} {name:11s} background / volume max: {both}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/random_eval"))
