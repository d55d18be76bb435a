"""Files at the edge: which format an input is, reading it into a :class:`~mrirecon.data.Volume`,
writing reconstructions as HDF5, DICOM or NIfTI, and writing any file atomically (:mod:`.files`). Every
reader refuses bad input with :class:`InputError` (:mod:`.errors`).

Inputs are told apart by content, not name: an HDF5 file with ``kspace`` is fastMRI, one with an
ISMRMRD group (``dataset/data`` + ``dataset/xml``) is ISMRMRD raw data.

The names below load their module on first use, so that ``mrirecon.io.files`` (imported by light
modules such as the checkpoint writer) does not pull in the HDF5/DICOM/NIfTI readers.
"""

from __future__ import annotations

import importlib
from typing import Any

from mrirecon.io.errors import InputError

_HOMES = {
    "FORMATS": "formats",
    "detect_format": "formats",
    "read_volume": "formats",
    "validate_input": "formats",
    "OUTPUT_FORMATS": "outputs",
    "output_path": "outputs",
    "write_output": "outputs",
}

__all__ = ["InputError", *sorted(_HOMES)]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
