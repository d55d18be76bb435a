"""How the untrained ESPIRiT solve's weight should follow each scan: the noise-aware weight of
``ReconModel(final_solve_trainable=True)``, w = a sigma^2 / P, against a per-scan MAP weight w = sigma^2 / tau^2 whose
network error power tau^2 is read off the data: the power of (network k-space - measured k-space) on the measured
samples, less sigma^2 (floored at 1 % of sigma^2). Everything else as the model's solve: 8 virtual coils, ESPIRiT
maps on the 64 x 64 grid with eigenvalue crop 0.9, 10 CG iterations, no lines put back.

Usage (repository root): python experiments/solve_weight.py FOLDER MASK_TYPE ACCELERATION [--truth T]
(as experiments/solve_maps.py). Prints PSNR (dB) / SSIM, the mean over volumes and then each volume, per variant.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from mrirecon.codecs.checkpoint import load_codec
from mrirecon.evaluate.cases import find_files, load_cases
from mrirecon.metrics import center_crop_to, psnr, ssim
from mrirecon.physics import (
    FINAL_SOLVE_GRID,
    as_complex,
    coil_basis,
    compress_coils,
    crop_readout,
    espirit_sens,
    expand_coils,
    kspace_noise_variance,
    rss,
    sens_expand,
    sens_reduce,
    sense_toward_prior,
)

CROP, ITERATIONS = 0.9, 10


def variants(net, masked: np.ndarray, mask: np.ndarray, nlf: int, height: int) -> dict[str, np.ndarray]:
    """One slice, masked [C,H,W] complex -> {variant: RSS image [height,W]}."""
    y = crop_readout(torch.view_as_real(torch.from_numpy(masked.astype(np.complex64)))[None], height)
    m = torch.from_numpy(mask.astype(bool)).view(1, 1, 1, -1, 1)
    with torch.no_grad():
        basis = coil_basis(y, net.virtual_coils)
        yv = compress_coils(y, basis)
        enc = net.encoder(yv, m, nlf)
        kv = net.decoder(net.run_backbone(enc.tokens), enc, yv, m)
        out = {"default": rss(kv, coil_dim=1)[0].numpy()}
        sens = espirit_sens(yv, nlf, CROP, FINAL_SOLVE_GRID)
        prior = sens_reduce(kv, sens)
        noise = kspace_noise_variance(yv).item()
        power = prior.square().sum(-1).mean().item()
        measured = m.expand_as(yv)[..., 0]
        residual = as_complex(kv - yv).abs().square()[measured].mean().item()
        weights = {"a 10 sigma2/P": 10 * noise / power, "a 1000 sigma2/P": 1000 * noise / power}
        weights["sigma2/tau2"] = noise / max(residual - noise, 0.01 * noise)
        for name, w in weights.items():
            x = sense_toward_prior(yv, sens, m, prior, w, ITERATIONS)
            out[name] = rss(expand_coils(kv + sens_expand(x - prior, sens), basis), coil_dim=1)[0].numpy()
        print("  ".join(f"{name}: w {w:.3g}" for name, w in weights.items()), flush=True)
        return out


def main(folder: Path, mask_type: str, acceleration: int, truth: Path | None) -> None:
    torch.manual_seed(0)
    net, _ = load_codec("codecs/default")
    scores: dict[str, list[tuple[float, float]]] = {}
    for path in find_files(folder):
        for case in load_cases(path, truth, [acceleration], mask_type, None):
            images: dict[str, list[np.ndarray]] = {}
            for s in range(case.num_slices):
                height = case.target.shape[-2]
                for k, v in variants(net, case.masked[s], case.mask, case.num_low_frequencies, height).items():
                    images.setdefault(k, []).append(v)
            target, top = case.target, case.target.max()
            for k, v in images.items():
                image = center_crop_to(np.stack(v), target.shape[-2:])
                scores.setdefault(k, []).append((psnr(target, image, top), ssim(target, image, top)))
    for k, v in scores.items():
        p, s = np.mean(v, axis=0)
        print(f"{k:18s} {p:.2f} / {s:.4f}   " + "  ".join(f"{a:.2f}/{b:.4f}" for a, b in v))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("mask_type")
    parser.add_argument("acceleration", type=int)
    parser.add_argument("--truth", type=Path)
    args = parser.parse_args()
    main(args.folder, args.mask_type, args.acceleration, args.truth)
