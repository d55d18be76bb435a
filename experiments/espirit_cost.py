"""Seconds that ReconModel's ESPIRiT final solve adds to each slice for its maps (``espirit_sens`` on the 8
virtual coils, sigpy on the CPU): what one training step through that solve would pay per slice.

Usage (repository root): python experiments/espirit_cost.py FOLDER [--slices N]
FOLDER of fully sampled files; each slice is undersampled with fastMRI's equispaced 4x mask and its readout cropped
to the target's height, as the harness does. Prints the matrix and the seconds of every slice, then the mean.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from fastmri.data.subsample import EquiSpacedMaskFunc

from mrirecon.evaluate.cases import find_files
from mrirecon.io.hdf5 import open_hdf5
from mrirecon.physics import coil_basis, compress_coils, crop_readout, espirit_sens
from mrirecon.physics.espirit import calib_width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--slices", type=int, default=2, help="slices per file")
    args = parser.parse_args()
    mask_func = EquiSpacedMaskFunc([0.08], [4])
    seconds = []
    for path in find_files(Path(args.folder)):
        for index in range(args.slices):
            with open_hdf5(path) as hf:
                kspace = torch.view_as_real(torch.from_numpy(hf["kspace"][index].astype(np.complex64)))  # [C,H,W,2]
                target_height = hf["reconstruction_rss"].shape[-2]
            kspace = crop_readout(kspace[None], target_height)  # [1,C,h,W,2]
            mask, nlf = mask_func(kspace.shape[1:], seed=index)
            measured = kspace * mask
            virtual = compress_coils(measured, coil_basis(measured, 8))
            start = time.perf_counter()
            espirit_sens(virtual, nlf, 0.0)
            seconds.append(time.perf_counter() - start)
            width = calib_width(torch.view_as_complex(virtual[0].contiguous()).numpy(), nlf)
            print(f"{path.name} slice {index}: {tuple(virtual.shape[1:4])}, calibration {width}, {seconds[-1]:.2f} s")
    threads = torch.get_num_threads()
    print(f"mean {np.mean(seconds):.2f} s per slice over {len(seconds)} slices, torch threads {threads}")


if __name__ == "__main__":
    main()
