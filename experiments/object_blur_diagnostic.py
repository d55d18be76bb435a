"""Issue 15 diagnostic: is the default's loss on smooth real anatomy a matter of object resolution?

The in-distribution test volumes (MNI anatomy; no test-split tuning: nothing is chosen here) are made
smoother by a Gaussian k-space taper (image FWHM 0, 2, 3, 4 target pixels; the noise is filtered with the
object), then the central slice of each is undersampled 4x (fastMRI's per-file mask) and reconstructed by the
shipped default and by sigpy's L1-wavelet (λ 0.001, ESPIRiT crop 0: the values the harness chose on
validation at 4x). Prints PSNR / SSIM per blur, mean over the volumes.

    python experiments/object_blur_diagnostic.py data/random_eval/test [--codec codecs/default]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mrirecon.api import Reconstructor
from mrirecon.baselines.classical import l1_wavelet
from mrirecon.evaluate.cases import find_files
from mrirecon.io import read_volume
from mrirecon.metrics import center_crop_to, volume_metrics
from mrirecon.physics import zero_filled_rss_np
from mrirecon.physics.masks import file_mask


def taper(kspace: np.ndarray, fwhm_px: float, target: tuple[int, int]) -> np.ndarray:
    """complex [..., H, W] -> the same k-space of an image blurred by a Gaussian of ``fwhm_px`` target pixels."""
    if fwhm_px == 0:
        return kspace
    H, W = kspace.shape[-2:]
    sigma = fwhm_px / (2 * np.sqrt(2 * np.log(2)))
    fy = np.fft.fftshift(np.fft.fftfreq(H)) * H / target[0]  # cycles per target pixel (readout oversampling)
    fx = np.fft.fftshift(np.fft.fftfreq(W)) * W / target[1]
    return kspace * np.exp(-2 * (np.pi * sigma) ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="fully sampled volumes")
    parser.add_argument("--codec", default="codecs/default")
    args = parser.parse_args()
    rec = Reconstructor.from_checkpoint(args.codec, device="cpu")
    scores: dict[tuple[float, str], list[dict[str, float]]] = {}
    for path in find_files(args.folder):
        volume = read_volume(path)
        middle = volume.kspace.shape[0] // 2
        kspace = volume.kspace[middle : middle + 1]  # [1,C,H,W]
        h, w = volume.crop_size
        mask, nlf = file_mask(volume.fname, kspace.shape[-1], "equispaced_fraction", 4)
        for fwhm in (0.0, 2.0, 3.0, 4.0):
            full = taper(kspace, fwhm, (h, w))
            target = center_crop_to(np.stack([zero_filled_rss_np(k) for k in full]), (1, h, w))
            masked = full * mask[None, None, None, :]
            ours = rec.reconstruct_kspace(masked, mask, nlf, crop_height=h)
            l1 = np.stack([l1_wavelet(k, mask, nlf, lamda=0.001, crop=0.0) for k in masked])
            for name, image in (("default", ours), ("l1-wavelet", l1)):
                scores.setdefault((fwhm, name), []).append(volume_metrics(target, image))
    print("| blur FWHM (px) | method | PSNR | SSIM |\n|---|---|---|---|")
    for (fwhm, name), per_volume in sorted(scores.items()):
        psnr = np.mean([m["PSNR"] for m in per_volume])
        ssim = np.mean([m["SSIM"] for m in per_volume])
        print(f"| {fwhm:g} | {name} | {psnr:.2f} | {ssim:.4f} |")


if __name__ == "__main__":
    main()
