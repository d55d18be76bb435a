"""fastMRI data: validation, reading, masks (from :mod:`mrirecon.physics.masks`), transforms, the Lightning
data module, the simulated set.

``FastMRIDataModule`` is imported lazily (it pulls in Lightning).
"""

from mrirecon.data.dataset import ValidatedSliceDataset
from mrirecon.data.transforms import SliceTransform
from mrirecon.data.validate import FileInfo, InvalidInputError, Limits, open_hdf5, validate_file
from mrirecon.data.volume import Volume, read_target, read_volume
from mrirecon.physics.masks import MASK_TYPES, STANDARD_PAIRS, file_mask, fixed_seed, make_mask_func, sample_mask

__all__ = [
    "MASK_TYPES",
    "STANDARD_PAIRS",
    "FastMRIDataModule",
    "FileInfo",
    "InvalidInputError",
    "Limits",
    "SliceTransform",
    "ValidatedSliceDataset",
    "Volume",
    "file_mask",
    "fixed_seed",
    "make_mask_func",
    "open_hdf5",
    "read_target",
    "read_volume",
    "sample_mask",
    "validate_file",
]


def __getattr__(name: str):
    if name == "FastMRIDataModule":
        from mrirecon.data.datamodule import FastMRIDataModule

        return FastMRIDataModule
    raise AttributeError(f"module 'mrirecon.data' has no attribute {name!r}")
