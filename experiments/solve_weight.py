"""How the untrained ESPIRiT solve's weight should follow each scan: the noise-aware weight of
``ReconModel(final_solve_trainable=True)``, w = a sigma^2 / P, against a per-scan MAP weight w = sigma^2 / tau^2 whose
network error power tau^2 is read off the data: the power of (network k-space - measured k-space) on the measured
samples, less sigma^2 (floored at 1 % of sigma^2); and a per-frequency (Wiener) weight w(k) = a sigma^2 / P(k), P(k)
the network image's power spectrum averaged over rings of equal frequency; and the solve of the codec's own card
(since default_v13 the shipped default's per-scan weight). Everything else as the model's solve: 8 virtual coils,
ESPIRiT maps on the 64 x 64 grid with eigenvalue crop 0.9, 10 CG iterations, no lines put back.

Usage (repository root): python experiments/solve_weight.py FOLDER MASK_TYPE ACCELERATION [--truth T]
(as experiments/solve_maps.py). Prints PSNR (dB) / SSIM, the mean over volumes and then each volume, per variant.
"""

import numpy as np
import torch
from solve_maps import cli, network_kspace  # experiments/ is on the path when this runs as a script
from torch import Tensor

from mrirecon.physics import (
    FINAL_SOLVE_GRID,
    as_complex,
    espirit_sens,
    expand_coils,
    fft2c,
    kspace_noise_variance,
    rss,
    sens_expand,
    sens_reduce,
    sense_toward_prior,
)

CROP, ITERATIONS, WIENER_SCALES = 0.9, 10, (10, 100, 1000, 10000)


def radial_power(image: Tensor, bins: int = 64) -> Tensor:
    """The power spectrum of image [B,1,H,W,2], averaged over rings of equal spatial frequency (cycles per pixel,
    so readout oversampling does not stretch them) -> [B,1,H,W,1], each frequency given its ring's mean |F x|^2."""
    B, _, H, W, _ = image.shape
    fy = (torch.arange(H, device=image.device) - H // 2) / H
    fx = (torch.arange(W, device=image.device) - W // 2) / W
    radius = (fy[:, None].square() + fx[None, :].square()).sqrt()
    ring = (radius / radius.max() * (bins - 1)).round().long().flatten()
    power = fft2c(image).square().sum(-1).reshape(B, H * W)
    counts = torch.bincount(ring, minlength=bins).clamp_min(1)
    means = torch.stack([torch.bincount(ring, weights=p, minlength=bins) for p in power]) / counts
    return means[:, ring].view(B, 1, H, W, 1)


def variants(net, masked: np.ndarray, mask: np.ndarray, nlf: int, height: int) -> dict[str, np.ndarray]:
    """One slice, masked [C,H,W] complex -> {variant: RSS image [height,W]}."""
    _, m, basis, yv, kv = network_kspace(net, masked, mask, nlf, height)
    with torch.no_grad():
        out = {"network": rss(kv, coil_dim=1)[0].numpy()}
        sens = espirit_sens(yv, nlf, CROP, FINAL_SOLVE_GRID)
        if net.final_solve_iterations:  # the solve as the codec's card sets it up (the shipped default's since v13)
            card = expand_coils(net.final_solve(kv, kv, yv, m, nlf, sens), basis)
            out["card's solve"] = rss(card, coil_dim=1)[0].numpy()
        prior = sens_reduce(kv, sens)
        noise = kspace_noise_variance(yv).item()
        power = prior.square().sum(-1).mean().item()
        measured = m.expand_as(yv)[..., 0]
        residual = as_complex(kv - yv).abs().square()[measured].mean().item()
        weights = {"a 10 sigma2/P": 10 * noise / power, "a 1000 sigma2/P": 1000 * noise / power}
        weights["sigma2/tau2"] = noise / max(residual - noise, 0.01 * noise)
        spectrum = radial_power(prior).clamp_min(1e-30)
        solves = {name: (w, False) for name, w in weights.items()}
        solves |= {f"a {a} sigma2/P(k)": (a * noise / spectrum, True) for a in WIENER_SCALES}
        for name, (w, per_frequency) in solves.items():
            x = sense_toward_prior(yv, sens, m, prior, w, ITERATIONS, kspace_weight=per_frequency)
            out[name] = rss(expand_coils(kv + sens_expand(x - prior, sens), basis), coil_dim=1)[0].numpy()
        print("  ".join(f"{name}: w {w:.3g}" for name, w in weights.items()), flush=True)
        return out


if __name__ == "__main__":
    cli(variants)
