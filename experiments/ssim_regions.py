"""Where one reconstruction loses SSIM to another: the fastMRI SSIM map split into background and anatomy.

For each test-format file of DATA_DIR (truth in the sibling folder named by SPLITS) and each codec, the
per-slice SSIM map of fastMRI's protocol (7x7 window, data range = the target volume's maximum) is averaged over
the background (pixels under 2% of the target's maximum) and over the rest. Printed per acceleration: each
method's SSIM, its background and anatomy parts (SSIM = background share x background SSIM + anatomy share x
anatomy SSIM), and PSNR over the anatomy alone. Use it on validation sets, never to tune on a test split.
Usage (repository root): python experiments/ssim_regions.py DATA_DIR NAME=CODEC[:k=v,...] ...
"""

import sys
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
from skimage.metrics import structural_similarity

from mrirecon.api import Reconstructor
from mrirecon.evaluate.methods import parse_method
from mrirecon.io import read_volume
from mrirecon.metrics import center_crop_to

SPLITS = {"test_format": "test_truth", "physics_test_format": "physics_truth", "shift_test_format": "shift_truth"}


def load_method(text: str) -> tuple[str, Reconstructor]:
    """NAME=DIR[:k=v,...], as in ``mrirecon.evaluate`` -> (NAME, that codec on the CPU with the overrides)."""
    spec = parse_method(text)
    return spec.name, Reconstructor.from_checkpoint(spec.checkpoint, device="cpu", **spec.overrides)


def region_scores(target: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """target, recon: [S, h, w] magnitudes of one volume -> SSIM, its parts and anatomy PSNR."""
    peak = float(target.max())
    background = target < 0.02 * peak
    maps = np.stack(
        [structural_similarity(t, r, data_range=peak, win_size=7, full=True)[1] for t, r in zip(target, recon)]
    )
    anatomy_mse = float(np.mean((target[~background] - recon[~background]) ** 2))
    return {
        "ssim": float(maps.mean()),
        "bg_share": float(background.mean()),
        "bg_ssim": float(maps[background].mean()),
        "anat_ssim": float(maps[~background].mean()),
        "anat_psnr": float(10 * np.log10(peak**2 / anatomy_mse)),
    }


def main(root: Path, specs: list[str]) -> None:
    methods = dict(load_method(s) for s in specs)
    split = next(s for s in SPLITS if (root / s).is_dir())
    rows: dict[tuple[int, str], list[dict[str, float]]] = defaultdict(list)
    for path in sorted((root / split).glob("*.h5")):
        volume = read_volume(path)
        with h5py.File(root / SPLITS[split] / path.name, "r") as f:
            target = f["reconstruction_rss"][()]
        acceleration = int(volume.attrs.get("acceleration", 0))
        for name, rec in methods.items():
            recon = center_crop_to(rec.reconstruct_volume(volume).recon, target.shape[-2:])
            rows[(acceleration, name)].append(region_scores(target, np.asarray(recon)))
    print(f"{root / split}: background = pixels under 2% of the target's maximum; mean over files")
    print("acc  method            SSIM    bg share  bg SSIM  anatomy SSIM  anatomy PSNR")
    for (acceleration, name), scores in sorted(rows.items()):
        m = {k: np.mean([s[k] for s in scores]) for k in scores[0]}
        print(
            f"{acceleration:>3}  {name:<16} {m['ssim']:.4f}   {m['bg_share']:.3f}     {m['bg_ssim']:.4f}   "
            f"{m['anat_ssim']:.4f}        {m['anat_psnr']:.2f}   ({len(scores)} files)"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
