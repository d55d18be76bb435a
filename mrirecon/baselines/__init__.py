"""Baselines of the evaluation harness.

Classical (numpy, one slice ``[C, H, W]`` complex k-space -> ``[H, W]`` float32): zero-filled RSS,
SENSE and L1-wavelet (sigpy, ESPIRiT maps), in :data:`CLASSICAL`; BART ``ecalib`` + l1-wavelet ``pics``
run as the ``bart`` program (:mod:`mrirecon.baselines.bart`).
Learned (``torch.nn.Module``, ``forward(masked_kspace [B,C,H,W,2], mask [B,1,1,W,1],
num_low_frequencies) -> [B,H,W]``): E2E-VarNet and U-Net from ``fastmri.models``, in :data:`LEARNED`.
"""

from mrirecon.baselines.bart import bart_available, bart_espirit, bart_pics, read_cfl, write_cfl
from mrirecon.baselines.classical import (
    CLASSICAL,
    ClassicalMethod,
    espirit_maps,
    l1_wavelet,
    sense,
    zero_filled,
)
from mrirecon.baselines.learned import LEARNED, UNetBaseline, VarNetBaseline, zero_filled_rss

__all__ = [
    "CLASSICAL",
    "LEARNED",
    "ClassicalMethod",
    "UNetBaseline",
    "bart_available",
    "bart_espirit",
    "bart_pics",
    "read_cfl",
    "write_cfl",
    "VarNetBaseline",
    "espirit_maps",
    "l1_wavelet",
    "sense",
    "zero_filled",
    "zero_filled_rss",
]
