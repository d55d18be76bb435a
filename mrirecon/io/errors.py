"""The one error type for bad input: every reader (fastMRI HDF5, ISMRMRD raw, DICOM, NIfTI) raises it.

``str(InputError(path, problem))`` reads ``"<path>: <problem>"``, the line a batch prints after ``FAILED``.
"""

from __future__ import annotations

import os

__all__ = ["InputError"]


class InputError(ValueError):
    """A file (or folder of files) that cannot be used; ``str()`` reads ``"<path>: <problem>"``.

    ``detail`` keeps the library's own words (h5py, pydicom, highdicom) for ``--verbose`` only.
    """

    def __init__(self, path: str | os.PathLike, problem: str, detail: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.detail = detail
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.path, self.problem, self.detail))
