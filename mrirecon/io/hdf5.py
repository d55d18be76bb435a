"""Hostile-HDF5 defences shared by every HDF5 reader (fastMRI files and ISMRMRD raw files).

:func:`open_hdf5` refuses a file holding an external link, a dangling soft link, a dataset with external raw
storage or a virtual dataset before any data is read, so nothing outside the input file is ever opened.
:func:`check_dataset_size` compares declared shapes and dtypes with :class:`Limits` (per volume, per slice;
``MRIRECON_MAX_VOLUME_BYTES``, ``MRIRECON_MAX_SLICE_BYTES``, ``MRIRECON_MIN_MATRIX``) before a byte is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError

MAX_HEADER_BYTES = 1 << 20  # ISMRMRD XML headers are tens of kB
MAX_OBJECTS = 10_000  # links walked per file; fastMRI files hold a handful
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}


_EOF = re.compile(r"\beof = (\d+).*?stored_eof = (\d+)")


def corrupt_hdf5(path: str | os.PathLike, err: BaseException) -> InputError:
    """A readable :class:`InputError` for an HDF5 file the library cannot open or read; h5py's
    message is kept in ``detail``."""
    match = _EOF.search(str(err))
    if match:
        have, declared = int(match.group(1)), int(match.group(2))
        problem = (
            f"truncated or corrupt HDF5 file: it holds {format_size(have)} of the {format_size(declared)} it declares "
            "(an interrupted upload or copy?); copy or upload the complete file again"
        )
    else:
        problem = "truncated or corrupt HDF5 file; check that the copy is complete, or export it again"
    return InputError(path, problem, detail=" ".join(str(err).split()) or type(err).__name__)


def parse_size(size: str | int) -> int:
    """``"200mb"``, ``"4GB"``, ``"1024"`` or an int -> bytes (binary units)."""
    if isinstance(size, int):
        return size
    text = str(size).strip().lower().replace(" ", "").removesuffix("ib").removesuffix("i")
    num = text.rstrip("bkmg")
    unit = text[len(num) :]
    if unit not in _UNITS or not num:
        raise ValueError(f"cannot read size {size!r} (use e.g. 512mb, 4gb)")
    return int(float(num) * _UNITS[unit])


@dataclass(frozen=True)
class Limits:
    """Caps checked on declared shapes before any read (a file may claim far more than it stores).

    ``max_volume_bytes``: one dataset in memory (k-space or target, whole volume);
    ``max_slice_bytes``: one slice of it (all coils); ``min_matrix``: smallest k-space side (H and W)
    the networks can reconstruct.
    """

    max_volume_bytes: int = 4 << 30
    max_slice_bytes: int = 256 << 20
    min_matrix: int = 16

    @classmethod
    def from_env(cls) -> Limits:
        """Defaults, overridden by ``MRIRECON_MAX_VOLUME_BYTES`` / ``MRIRECON_MAX_SLICE_BYTES`` (e.g. ``8gb``)
        and ``MRIRECON_MIN_MATRIX``."""
        env = os.environ
        base = cls()
        return cls(
            max_volume_bytes=parse_size(env.get("MRIRECON_MAX_VOLUME_BYTES", base.max_volume_bytes)),
            max_slice_bytes=parse_size(env.get("MRIRECON_MAX_SLICE_BYTES", base.max_slice_bytes)),
            min_matrix=int(env.get("MRIRECON_MIN_MATRIX", base.min_matrix)),
        )


def format_size(n: int) -> str:
    """Bytes as KiB, MiB or GiB, for messages."""
    if n < 2**20:
        return f"{n / 2**10:,.1f} KiB"
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.1f} GiB"


def check_dataset_size(path: str | os.PathLike, name: str, dset: h5py.Dataset, limits: Limits | None = None) -> None:
    """Refuse a dataset whose declared size (shape x itemsize) is above ``limits``, before reading it.
    Axis 0 is the slice axis."""
    limits = limits or Limits.from_env()
    shape = tuple(int(n) for n in dset.shape or ())
    total = int(np.prod(shape, dtype=np.float64)) * dset.dtype.itemsize
    if total > limits.max_volume_bytes:
        raise InputError(
            path,
            f"'{name}' declares shape {shape} {dset.dtype} = {format_size(total)}, above the limit of "
            f"{format_size(limits.max_volume_bytes)} per volume (MRIRECON_MAX_VOLUME_BYTES)",
        )
    per_slice = total // shape[0] if shape and shape[0] else total
    if per_slice > limits.max_slice_bytes:
        raise InputError(
            path,
            f"'{name}' declares slices of {format_size(per_slice)} (shape {shape} {dset.dtype}), above the limit of "
            f"{format_size(limits.max_slice_bytes)} per slice (MRIRECON_MAX_SLICE_BYTES)",
        )


def _check_storage(path: Path, name: str, dset: h5py.Dataset) -> None:
    """Refuse datasets whose bytes live outside the file (external raw files, virtual datasets)."""
    if dset.is_virtual:
        raise InputError(path, f"'{name}' is a virtual dataset (data from other files); refused")
    if dset.external or dset.id.get_create_plist().get_external_count():
        raise InputError(path, f"'{name}' stores its data in an external file; refused")


def check_hdf5_contents(path: str | os.PathLike, hf: h5py.File) -> None:
    """Walk every link of an open file without following any, and refuse external links, soft links that
    do not resolve inside the file, external raw storage and virtual datasets. Reads no data."""
    path = Path(path)
    soft: list[tuple[str, str]] = []
    stack: list[tuple[str, h5py.Group]] = [("", hf)]
    seen = 0
    while stack:
        prefix, group = stack.pop()
        for name in group:  # iterates link names; nothing is resolved
            seen += 1
            if seen > MAX_OBJECTS:
                raise InputError(path, f"more than {MAX_OBJECTS} HDF5 objects; not a fastMRI file")
            full = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise InputError(path, f"'{full}' is a link to another file; links outside the file are refused")
            if isinstance(link, h5py.SoftLink):
                soft.append((full, link.path))
                continue
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                stack.append((full, obj))
            elif isinstance(obj, h5py.Dataset):
                _check_storage(path, full, obj)
    for full, target in soft:  # safe now: no link in the file leads outside it
        if hf.get(target) is None:
            raise InputError(path, f"'{full}' is a soft link to '{target}', which is not in the file")


def check_hdf5_file(path: Path) -> None:
    """The file-level checks every HDF5 input passes before it is opened (fastMRI and ISMRMRD alike)."""
    if not path.exists():
        raise InputError(path, "file does not exist")
    if not path.is_file():
        raise InputError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as err:
        raise corrupt_hdf5(path, err) from None
    if not is_hdf5:
        raise InputError(path, "not an HDF5 file")


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 file read-only after the file-level checks and :func:`check_hdf5_contents`.
    Use as a context manager; raises :class:`InputError`."""
    path = Path(path)
    check_hdf5_file(path)
    try:
        hf = h5py.File(path, "r")
    except OSError as err:
        raise corrupt_hdf5(path, err) from None
    try:
        check_hdf5_contents(path, hf)
    except InputError:
        hf.close()
        raise
    except (OSError, RuntimeError, KeyError) as err:
        hf.close()
        raise corrupt_hdf5(path, err) from None
    return hf
