"""Which maps a final SENSE solve after the default's cascades should use: the network's learned maps or ESPIRiT
maps (sigpy) calibrated on the virtual coils, and whether the solve should replace the coil images (S x) or only
correct them along the maps (coil images + S (x - x_net), which leaves the background, where the maps are zero,
as the network made it).

Usage (repository root): python experiments/solve_maps.py FOLDER MASK_TYPE ACCELERATION [WEIGHT ...] [--truth T]
FOLDER of fully sampled files, or of test-format files (stored masks; MASK_TYPE is then ignored) with their
ground truth in T. Prints PSNR (dB) / SSIM per file and variant, then the means.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import sigpy as sp
import sigpy.mri
import torch

from mrirecon.codecs.checkpoint import load_codec
from mrirecon.evaluate.cases import find_files, load_cases
from mrirecon.metrics import center_crop_to, psnr, ssim
from mrirecon.physics import (
    as_complex,
    coil_basis,
    compress_coils,
    crop_readout,
    data_consistency,
    expand_coils,
    fft2c,
    ifft2c,
    rss,
    sens_expand,
    sens_reduce,
    sense_toward_prior,
)

ITERATIONS = 10


def espirit(kspace_v: torch.Tensor, calib: int, crop: float) -> torch.Tensor:
    """Virtual-coil k-space [1,V,H,W,2] -> ESPIRiT maps [1,V,H,W,2] (sigpy, one set, eigenvalue crop)."""
    k = as_complex(kspace_v)[0].numpy()
    k = k / np.abs(k).max()
    app = sigpy.mri.app.EspiritCalib(
        k, calib_width=calib, kernel_width=6, thresh=0.02, crop=crop, device=sp.cpu_device, show_pbar=False
    )
    maps = np.asarray(app.run()).astype(np.complex64)
    return torch.view_as_real(torch.from_numpy(maps))[None]


def variants(
    net, masked: np.ndarray, mask: np.ndarray, nlf: int, height: int, weights: list[float]
) -> dict[str, np.ndarray]:
    """One slice, masked [C,H,W] complex -> {variant: RSS image [height,W]} (the readout cut to the target's
    rows first, as the harness does)."""
    y = crop_readout(torch.view_as_real(torch.from_numpy(masked.astype(np.complex64)))[None], height)
    m = torch.from_numpy(mask.astype(bool)).view(1, 1, 1, -1, 1)
    with torch.no_grad():
        basis = coil_basis(y, net.virtual_coils)
        yv = compress_coils(y, basis)
        enc = net.encoder(yv, m, nlf)
        kv = net.decoder(net.run_backbone(enc.tokens), enc, yv, m)
        out = {"net": rss(kv, coil_dim=1)[0].numpy()}

        def finish(kspace_v: torch.Tensor) -> np.ndarray:
            return rss(data_consistency(expand_coils(kspace_v, basis), y, m), coil_dim=1)[0].numpy()

        maps = {"learned": enc.sens_maps, "espirit": espirit(yv, nlf, 0.0), "espirit.9": espirit(yv, nlf, 0.9)}
        for name, sens in maps.items():
            prior = sens_reduce(kv, sens)
            for w in weights:
                x = sense_toward_prior(yv, sens, m, prior, w, ITERATIONS)
                if name == "learned":
                    out[f"{name} replace w={w}"] = finish(sens_expand(x, sens))
                delta = torch.view_as_real(as_complex(sens) * as_complex(x - prior))
                out[f"{name} correct w={w}"] = finish(fft2c(ifft2c(kv) + delta))
        return out


def main(folder: Path, mask_type: str, acceleration: int, weights: list[float], truth: Path | None) -> None:
    torch.manual_seed(0)
    net, _ = load_codec("codecs/default")
    totals: dict[str, list[tuple[float, float]]] = {}
    for path in find_files(folder):
        cases = load_cases(path, truth, [acceleration], mask_type, None)
        if not cases:
            continue
        case = cases[0]
        t0 = time.perf_counter()
        images: dict[str, list[np.ndarray]] = {}
        for s in range(case.num_slices):
            for k, v in variants(
                net, case.masked[s], case.mask, case.num_low_frequencies, case.target.shape[-2], weights
            ).items():
                images.setdefault(k, []).append(v)
        target, top = case.target, case.target.max()
        for k, v in images.items():
            image = center_crop_to(np.stack(v), target.shape[-2:])
            score = (psnr(target, image, top), ssim(target, image, top))
            totals.setdefault(k, []).append(score)
            print(f"{path.name} {k}: {score[0]:.2f} / {score[1]:.4f}", flush=True)
        print(f"{path.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    for k, v in totals.items():
        p, s = np.mean(v, axis=0)
        print(f"mean {k}: {p:.2f} / {s:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("mask_type")
    parser.add_argument("acceleration", type=int)
    parser.add_argument("weights", type=float, nargs="*", default=[0.1])
    parser.add_argument("--truth", type=Path)
    a = parser.parse_args()
    main(a.folder, a.mask_type, a.acceleration, a.weights, a.truth)
