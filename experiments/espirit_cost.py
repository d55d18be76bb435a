"""Seconds that ReconModel's ESPIRiT final solve adds to each slice for its maps (``espirit_sens`` on the 8
virtual coils, sigpy on the CPU), at full resolution and calibrated on coarser grids (``grid``), and how well each
set of maps explains the slice: the share of the fully sampled virtual-coil images that lies outside the maps'
span, ||x - S S^H x|| / ||x|| over the target's field of view (lower is better; 0 for perfect maps).

Usage (repository root): python experiments/espirit_cost.py FOLDER [--slices N] [--grids 64 96]
FOLDER of fully sampled files; each slice is undersampled with fastMRI's equispaced 4x mask and its readout cropped
to the target's height, as the harness does. Prints every slice, then the means per grid ("full": no grid).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from fastmri.data.subsample import EquiSpacedMaskFunc

from mrirecon.evaluate.cases import find_files
from mrirecon.io.hdf5 import open_hdf5
from mrirecon.physics import as_complex, coil_basis, compress_coils, crop_readout, espirit_sens, ifft2c


def outside_span(images: torch.Tensor, maps: torch.Tensor) -> float:
    """images, maps complex [C,H,W] -> ||x - S S^H x|| / ||x||."""
    along = maps * (maps.conj() * images).sum(0, keepdim=True)
    return float((images - along).norm() / images.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--slices", type=int, default=2, help="slices per file")
    parser.add_argument("--grids", type=int, nargs="*", default=[], help="coarse calibration grids to compare")
    args = parser.parse_args()
    mask_func = EquiSpacedMaskFunc([0.08], [4])
    grids = [None, *args.grids]
    seconds: dict = {g: [] for g in grids}
    residual: dict = {g: [] for g in grids}
    for path in find_files(Path(args.folder)):
        for index in range(args.slices):
            with open_hdf5(path) as hf:
                kspace = torch.view_as_real(torch.from_numpy(hf["kspace"][index].astype(np.complex64)))  # [C,H,W,2]
                target_height = hf["reconstruction_rss"].shape[-2]
            kspace = crop_readout(kspace[None], target_height)  # [1,C,h,W,2]
            mask, nlf = mask_func(kspace.shape[1:], seed=index)
            basis = coil_basis(kspace * mask, 8)
            images = as_complex(ifft2c(compress_coils(kspace, basis)))[0]  # fully sampled virtual coils [V,h,W]
            line = f"{path.name} slice {index} {tuple(images.shape)}:"
            for g in grids:
                start = time.perf_counter()
                maps = espirit_sens(compress_coils(kspace * mask, basis), nlf, 0.0, grid=g)
                seconds[g].append(time.perf_counter() - start)
                residual[g].append(outside_span(images, as_complex(maps)[0]))
                line += f"  {g or 'full'}: {seconds[g][-1]:.2f} s, outside {residual[g][-1]:.4f}"
            print(line, flush=True)
    threads = torch.get_num_threads()
    for g in grids:
        print(f"{g or 'full'}: mean {np.mean(seconds[g]):.2f} s per slice, outside the maps {np.mean(residual[g]):.4f} "
              f"over {len(seconds[g])} slices, torch threads {threads}")  # fmt: skip


if __name__ == "__main__":
    main()
