"""The default followed by an untrained final SENSE solve with ESPIRiT maps (``final_solve_maps=espirit``), for
several ESPIRiT crops and solve weights, against the default without it.

Runs the network once per slice and calibrates ESPIRiT once (the eigenvalue map gives every crop), then applies
the same correction as ``ReconModel.final_solve`` for each variant: x = argmin ||A x - y||^2 + w ||x - x_net||^2
(10 CG iterations), coil k-space + F S (x - x_net), back on the physical coils, measured lines put back, RSS.

Usage (repository root): python experiments/solve_maps.py FOLDER MASK_TYPE ACCELERATION [--truth T]
FOLDER of fully sampled files, or of test-format files (stored masks; MASK_TYPE is then ignored) with their
ground truth in T. Prints PSNR (dB) / SSIM, the mean over volumes and then each volume, per variant.
"""

import argparse
from pathlib import Path

import numpy as np
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
    espirit_calibration,
    expand_coils,
    rss,
    sens_expand,
    sens_reduce,
    sense_toward_prior,
)

CROPS, WEIGHTS, ITERATIONS = (0.0, 0.9), (0.003, 0.01, 0.03), 10


@torch.no_grad()
def network_kspace(net, masked: np.ndarray, mask: np.ndarray, nlf: int, height: int) -> tuple[torch.Tensor, ...]:
    """One slice, masked [C,H,W] complex, its readout cut to the target's rows first (as the harness does) -> the
    measured k-space y [1,C,h,W,2], mask [1,1,1,W,1], coil basis [1,C,V], virtual coils yv [1,V,h,W,2] and the
    network's virtual-coil k-space kv [1,V,h,W,2] before any final solve."""
    y = crop_readout(torch.view_as_real(torch.from_numpy(masked.astype(np.complex64)))[None], height)
    m = torch.from_numpy(mask.astype(bool)).view(1, 1, 1, -1, 1)
    basis = coil_basis(y, net.virtual_coils)
    yv = compress_coils(y, basis)
    enc = net.encoder(yv, m, nlf)
    return y, m, basis, yv, net.decoder(net.run_backbone(enc.tokens), enc, yv, m)


def variants(net, masked: np.ndarray, mask: np.ndarray, nlf: int, height: int) -> dict[str, np.ndarray]:
    """One slice, masked [C,H,W] complex -> {variant: RSS image [height,W]}."""
    y, m, basis, yv, kv = network_kspace(net, masked, mask, nlf, height)
    with torch.no_grad():
        out = {"default": rss(kv, coil_dim=1)[0].numpy()}
        maps, eig = espirit_calibration(as_complex(yv)[0].numpy(), nlf)  # one calibration, every crop
        for crop in CROPS:
            sens = torch.view_as_real(torch.from_numpy(maps * (eig > crop)))[None]
            prior = sens_reduce(kv, sens)
            for w in WEIGHTS:
                x = sense_toward_prior(yv, sens, m, prior, w, ITERATIONS)
                k = expand_coils(kv + sens_expand(x - prior, sens), basis)
                out[f"crop {crop} w {w}"] = rss(data_consistency(k, y, m), coil_dim=1)[0].numpy()
        return out


def main(variants_of, folder: Path, mask_type: str, acceleration: int, truth: Path | None) -> None:
    """Scores every variant that ``variants_of(net, masked, mask, nlf, height)`` makes of each slice (the default
    codec) and prints them; shared with experiments/solve_weight.py."""
    torch.manual_seed(0)
    net, _ = load_codec("codecs/default")
    scores: dict[str, list[tuple[float, float]]] = {}
    for path in find_files(folder):
        for case in load_cases(path, truth, [acceleration], mask_type, None):
            images: dict[str, list[np.ndarray]] = {}
            for s in range(case.num_slices):
                height = case.target.shape[-2]
                for k, v in variants_of(net, case.masked[s], case.mask, case.num_low_frequencies, height).items():
                    images.setdefault(k, []).append(v)
            target, top = case.target, case.target.max()
            for k, v in images.items():
                image = center_crop_to(np.stack(v), target.shape[-2:])
                scores.setdefault(k, []).append((psnr(target, image, top), ssim(target, image, top)))
    for k, v in scores.items():
        p, s = np.mean(v, axis=0)
        print(f"{k:18s} {p:.2f} / {s:.4f}   " + "  ".join(f"{a:.2f}/{b:.4f}" for a, b in v))


def cli(variants_of) -> None:
    """FOLDER MASK_TYPE ACCELERATION [--truth T] -> :func:`main`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("mask_type")
    parser.add_argument("acceleration", type=int)
    parser.add_argument("--truth", type=Path)
    a = parser.parse_args()
    main(variants_of, a.folder, a.mask_type, a.acceleration, a.truth)


if __name__ == "__main__":
    cli(variants)
