"""Files at the edge: which format an input is, reading it into a :class:`~mrirecon.data.Volume`,
and writing reconstructions as HDF5, DICOM or NIfTI.

Inputs are told apart by content, not name: an HDF5 file with ``kspace`` is fastMRI, one with an
ISMRMRD group (``dataset/data`` + ``dataset/xml``) is ISMRMRD raw data.
"""

from mrirecon.io.formats import FORMATS, detect_format, read_volume, validate_input
from mrirecon.io.outputs import OUTPUT_FORMATS, output_path, write_output

__all__ = [
    "FORMATS",
    "OUTPUT_FORMATS",
    "detect_format",
    "output_path",
    "read_volume",
    "validate_input",
    "write_output",
]
