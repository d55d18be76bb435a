"""Background level of learned reconstructions against the target's, per test-format split.

Background: pixels under 2% of the target volume's maximum. Printed: their mean in the reconstruction and in
the target, relative to the volume maximum, averaged over the split's files. A reconstruction that paints a
glow over the background (SSIM's luminance term then collapses there) shows a recon level above the target's.
Usage (repository root): python experiments/background_floor.py [DATA_DIR] (default data/random_eval).
"""

import sys
from pathlib import Path

import h5py
import numpy as np

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
            for name, rec in recs.items():
                recon = center_crop_to(rec.reconstruct_volume(volume).recon, target.shape[-2:])
                levels.setdefault(name, []).append((recon[background].mean() / peak, target[background].mean() / peak))
        for name, pairs in levels.items():
            recon_level, target_level = np.mean(pairs, axis=0) * 100
            levels_text = f"recon {recon_level:.2f}%  target {target_level:.2f}%"
            print(f"{split:20s} {name:11s} background / volume max: {levels_text}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/random_eval"))
