"""How much the default's coil compression alone costs: the fastMRI target against the RSS of the *fully sampled*
k-space compressed to V virtual coils, with the basis the network computes from the undersampled lines.

No network runs: a PSNR / SSIM here is the best any reconstruction through V virtual coils could reach (without the
final solve, whose data consistency puts every physical coil back). Printed per file: PSNR (dB) / SSIM per V.
Usage (repository root): python experiments/compression_ceiling.py FOLDER MASK_TYPE ACCELERATION [V ...]
(FOLDER of fully sampled files; V default 8 12 16).
"""

import sys
from pathlib import Path

import numpy as np
import torch

from mrirecon.evaluate.cases import find_files, load_cases
from mrirecon.io import read_volume
from mrirecon.metrics import center_crop_to, psnr, ssim
from mrirecon.physics import coil_basis, compress_coils, rss


def compressed_rss(full: np.ndarray, masked: np.ndarray, virtual_coils: int) -> np.ndarray:
    """full, masked complex [S,C,H,W] -> RSS [S,H,W] of ``full`` on the virtual coils of ``masked``."""
    out = []
    for s in range(full.shape[0]):
        basis = coil_basis(torch.view_as_real(torch.from_numpy(masked[s : s + 1])), virtual_coils)
        kspace = torch.view_as_real(torch.from_numpy(full[s : s + 1].astype(np.complex64)))
        out.append(rss(compress_coils(kspace, basis), coil_dim=1)[0].numpy())
    return np.stack(out)


def main(folder: Path, mask_type: str, acceleration: int, sizes: list[int]) -> None:
    for path in find_files(folder):
        case = load_cases(path, None, [acceleration], mask_type, None)[0]
        full, target = read_volume(path).kspace, case.target
        scores = []
        for v in sizes:
            image = center_crop_to(compressed_rss(full, case.masked, v), target.shape[-2:])
            scores.append(f"V={v}: {psnr(target, image, target.max()):.2f} / {ssim(target, image, target.max()):.4f}")
        print(f"{path.name} ({full.shape[1]} coils): " + ", ".join(scores), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), [int(v) for v in sys.argv[4:]] or [8, 12, 16])
