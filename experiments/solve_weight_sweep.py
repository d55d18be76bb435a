"""Which weight the untrained ESPIRiT solve should take on each slice, and what in the scan predicts it.

For one slice of every volume and each mask, the default's network runs once, then the model's solve (8 virtual
coils, ESPIRiT maps on the 64 x 64 grid with eigenvalue crop 0.9, 10 CG iterations, nothing put back) runs for a
ladder of scalar weights w. Each line of the output (JSON) holds the scan's features and PSNR / SSIM of the
network alone and of every w:
  noise_to_signal  sigma^2 / P (k-space noise variance over the mean power of the network's image);
  map_misfit       the share of the calibration region's coil images outside the ESPIRiT maps' span,
                   ||x - S S^H x|| / ||x|| (0 when the maps explain the data);
  coils, virtual_coils, sampled (fraction of k-space columns measured).

Usage (repository root): python experiments/solve_weight_sweep.py OUT.jsonl FOLDER [FOLDER ...]
    [--masks equispaced:4 random:8]  (folders of fully sampled files; the middle slice of each volume)
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from solve_maps import network_kspace  # experiments/ is on the path when this runs as a script

from mrirecon.codecs.checkpoint import load_codec
from mrirecon.evaluate.cases import find_files, load_cases
from mrirecon.metrics import center_crop_to, psnr, ssim
from mrirecon.physics import (
    FINAL_SOLVE_GRID,
    espirit_sens,
    expand_coils,
    kspace_noise_variance,
    map_misfit,
    rss,
    sens_expand,
    sens_reduce,
    sense_toward_prior,
)

CROP, ITERATIONS = 0.9, 10
WEIGHTS = [float(10**e) for e in np.arange(-5.0, 1.01, 0.5)]


@torch.no_grad()
def sweep(net, case, index: int) -> dict:
    """One slice -> its features and the scores of the network and of every weight."""
    height, top = case.target.shape[-2], float(case.target.max())
    y, m, basis, yv, kv = network_kspace(net, case.masked[index], case.mask, case.num_low_frequencies, height)
    target = case.target[index]

    def score(k: torch.Tensor) -> list[float]:
        image = center_crop_to(rss(k, coil_dim=1)[0].numpy(), target.shape)
        return [psnr(target[None], image[None], top), ssim(target[None], image[None], top)]

    sens = espirit_sens(yv, case.num_low_frequencies, CROP, FINAL_SOLVE_GRID)
    prior = sens_reduce(kv, sens)
    row = {
        "noise_to_signal": kspace_noise_variance(yv).item() / prior.square().sum(-1).mean().item(),
        "map_misfit": map_misfit(yv, sens, case.num_low_frequencies).item(),
        "coils": y.shape[1],
        "virtual_coils": yv.shape[1],
        "sampled": float(case.mask.mean()),
        "network": score(expand_coils(kv, basis)),
        "weights": WEIGHTS,
        "solve": [],
    }
    for w in WEIGHTS:
        x = sense_toward_prior(yv, sens, m, prior, w, ITERATIONS)
        row["solve"].append(score(expand_coils(kv + sens_expand(x - prior, sens), basis)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--masks", nargs="+", default=["equispaced:4", "random:8"])
    args = parser.parse_args()
    torch.manual_seed(0)
    net, _ = load_codec("codecs/default")
    with args.out.open("w") as out:
        for folder in args.folders:
            for path in find_files(folder):
                for spec in args.masks:
                    mask_type, acceleration = spec.split(":")
                    for case in load_cases(path, None, [int(acceleration)], mask_type, None):
                        row = {"file": f"{folder.parent.name}/{path.name}", "mask": spec}
                        row |= sweep(net, case, case.num_slices // 2)
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                        best = int(np.argmax([p + 100 * s for p, s in row["solve"]]))
                        print(
                            f"{row['file']} {spec}: sigma2/P {row['noise_to_signal']:.2e} misfit "
                            f"{row['map_misfit']:.3f} coils {row['coils']}  network {row['network'][0]:.2f}/"
                            f"{row['network'][1]:.4f}  best w {WEIGHTS[best]:.0e} {row['solve'][best][0]:.2f}/"
                            f"{row['solve'][best][1]:.4f}",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
