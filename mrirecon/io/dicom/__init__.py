"""DICOM export and import of magnitude image volumes ``[S, H, W]``.

- :mod:`.header`: the geometry, MR acquisition attributes and identity a series is written with (from
  an ISMRMRD XML header or HDF5 attributes);
- :mod:`.write`: single-frame MR Image Storage series (pydicom) or one Legacy Converted Enhanced MR
  object (highdicom), one value scale per series;
- :mod:`.read`: series found under a folder, checked and assembled into volumes by highdicom.

Pseudonyms come from :mod:`mrirecon.io.deid`; every refused input is an :class:`~mrirecon.io.InputError`.
"""

from mrirecon.io.deid import pseudonym
from mrirecon.io.dicom.header import (
    DEFAULT_GEOMETRY,
    Acquisition,
    Geometry,
    acquisition_from_ismrmrd,
    geometry_from_h5,
    geometry_from_ismrmrd,
    identity_from_h5,
    identity_from_ismrmrd,
)
from mrirecon.io.dicom.read import Series, load_series, read_series, scan_folder
from mrirecon.io.dicom.write import (
    DEIDENTIFIED_DESCRIPTION,
    PRIVATE_CREATOR,
    PRIVATE_GROUP,
    quantise,
    write_enhanced,
    write_series,
)

__all__ = [
    "DEFAULT_GEOMETRY",
    "DEIDENTIFIED_DESCRIPTION",
    "PRIVATE_CREATOR",
    "PRIVATE_GROUP",
    "Acquisition",
    "Geometry",
    "Series",
    "acquisition_from_ismrmrd",
    "geometry_from_h5",
    "geometry_from_ismrmrd",
    "identity_from_h5",
    "identity_from_ismrmrd",
    "load_series",
    "pseudonym",
    "quantise",
    "read_series",
    "scan_folder",
    "write_enhanced",
    "write_series",
]
