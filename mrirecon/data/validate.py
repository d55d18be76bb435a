"""Input validation for fastMRI-format HDF5 files: the one gate every entry point goes through.

Every file is checked here before any other code touches it, so that a bad file produces one
:class:`~mrirecon.io.InputError` naming the file and the problem instead of a traceback from h5py or torch.

Hostile files: :func:`open_hdf5` refuses a file holding an external link, a dangling soft link, a
dataset with external raw storage or a virtual dataset before any data is read, so nothing outside the
input file is ever opened. :func:`check_dataset_size` compares declared shapes and dtypes with
:class:`Limits` (per volume, per slice; configurable through ``MRIRECON_MAX_VOLUME_BYTES``,
``MRIRECON_MAX_SLICE_BYTES`` and ``MRIRECON_MIN_MATRIX``) before a byte is read, so a few-kilobyte
file declaring a huge compressed dataset cannot allocate memory; values are checked slice by slice.
ISMRMRD raw files pass the same :func:`open_hdf5` and :class:`Limits`
(:func:`mrirecon.io.ismrmrd_gate.inspect_ismrmrd`).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from fastmri.data.mri_data import et_query

from mrirecon.io.errors import InputError

RECON_KEYS = {"multicoil": "reconstruction_rss", "singlecoil": "reconstruction_esc"}
KSPACE_RANK = {"multicoil": 4, "singlecoil": 3}
MAX_HEADER_BYTES = 1 << 20  # ISMRMRD XML headers are tens of kB
MAX_OBJECTS = 10_000  # links walked per file; fastMRI files hold a handful
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}


InvalidInputError = InputError  # the data layer's name for :class:`mrirecon.io.InputError`

_EOF = re.compile(r"\beof = (\d+).*?stored_eof = (\d+)")


def corrupt_hdf5(path: str | os.PathLike, err: BaseException) -> InvalidInputError:
    """A readable :class:`InvalidInputError` for an HDF5 file the library cannot open or read; h5py's
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
    return InvalidInputError(path, problem, detail=" ".join(str(err).split()) or type(err).__name__)


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
        raise InvalidInputError(
            path,
            f"'{name}' declares shape {shape} {dset.dtype} = {format_size(total)}, above the limit of "
            f"{format_size(limits.max_volume_bytes)} per volume (MRIRECON_MAX_VOLUME_BYTES)",
        )
    per_slice = total // shape[0] if shape and shape[0] else total
    if per_slice > limits.max_slice_bytes:
        raise InvalidInputError(
            path,
            f"'{name}' declares slices of {format_size(per_slice)} (shape {shape} {dset.dtype}), above the limit of "
            f"{format_size(limits.max_slice_bytes)} per slice (MRIRECON_MAX_SLICE_BYTES)",
        )


def _check_storage(path: Path, name: str, dset: h5py.Dataset) -> None:
    """Refuse datasets whose bytes live outside the file (external raw files, virtual datasets)."""
    if dset.is_virtual:
        raise InvalidInputError(path, f"'{name}' is a virtual dataset (data from other files); refused")
    if dset.external or dset.id.get_create_plist().get_external_count():
        raise InvalidInputError(path, f"'{name}' stores its data in an external file; refused")


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
                raise InvalidInputError(path, f"more than {MAX_OBJECTS} HDF5 objects; not a fastMRI file")
            full = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise InvalidInputError(path, f"'{full}' is a link to another file; links outside the file are refused")
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
            raise InvalidInputError(path, f"'{full}' is a soft link to '{target}', which is not in the file")


def check_hdf5_file(path: Path) -> None:
    """The file-level checks every HDF5 input passes before it is opened (fastMRI and ISMRMRD alike)."""
    if not path.exists():
        raise InvalidInputError(path, "file does not exist")
    if not path.is_file():
        raise InvalidInputError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise InvalidInputError(path, "empty file (0 bytes)")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as err:
        raise corrupt_hdf5(path, err) from None
    if not is_hdf5:
        raise InvalidInputError(path, "not an HDF5 file")


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """Open an HDF5 file read-only after the file-level checks and :func:`check_hdf5_contents`.
    Use as a context manager; raises :class:`InvalidInputError`."""
    path = Path(path)
    check_hdf5_file(path)
    try:
        hf = h5py.File(path, "r")
    except OSError as err:
        raise corrupt_hdf5(path, err) from None
    try:
        check_hdf5_contents(path, hf)
    except InvalidInputError:
        hf.close()
        raise
    except (OSError, RuntimeError, KeyError) as err:
        hf.close()
        raise corrupt_hdf5(path, err) from None
    return hf


def read_header_xml(path: str | os.PathLike, hf: h5py.File) -> str | None:
    """The ``ismrmrd_header`` string of an open file (None when absent), size-checked before reading."""
    return read_xml_dataset(path, "ismrmrd_header", hf["ismrmrd_header"]) if "ismrmrd_header" in hf else None


def read_xml_dataset(path: str | os.PathLike, name: str, dset: Any) -> str:
    """The single string held by dataset ``name`` (an XML header), refused above :data:`MAX_HEADER_BYTES`
    before and after reading (variable-length strings declare no size)."""
    if not isinstance(dset, h5py.Dataset) or dset.size != 1 or dset.dtype.kind not in "SOU":
        raise InvalidInputError(path, f"'{name}' is not a single string")
    if dset.dtype.kind != "O" and dset.dtype.itemsize > MAX_HEADER_BYTES:
        raise InvalidInputError(path, f"'{name}' is larger than {format_size(MAX_HEADER_BYTES)}")
    value = dset[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        value = bytes(value).decode("utf-8", "replace")
    if len(value) > MAX_HEADER_BYTES:
        raise InvalidInputError(path, f"'{name}' is larger than {format_size(MAX_HEADER_BYTES)}")
    return str(value)


@dataclass
class FileInfo:
    """What :func:`validate_file` learnt about one file.

    ``kspace_shape`` is [S,C,H,W] (multicoil) or [S,H,W] (singlecoil); ``crop_size`` is the (h, w) of
    the target image (ISMRMRD ``reconSpace`` when the header has one, else the stored target shape);
    ``padding_left``/``padding_right`` bound the acquired phase-encode columns (fastMRI convention).
    """

    path: Path
    challenge: str
    is_test_format: bool
    kspace_shape: tuple[int, ...]
    recon_key: str | None
    target_shape: tuple[int, ...] | None
    crop_size: tuple[int, int]
    encoding_size: tuple[int, int, int]
    recon_size: tuple[int, int, int]
    padding_left: int
    padding_right: int
    has_header: bool
    mask: np.ndarray | None = None
    acceleration: int | None = None
    num_low_frequencies: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        return self.kspace_shape[0]

    @property
    def shape_hw(self) -> tuple[int, int]:
        """k-space (readout H, phase-encode W)."""
        return self.kspace_shape[-2], self.kspace_shape[-1]

    def metadata(self) -> dict[str, Any]:
        """The per-file metadata dict that ``fastmri.data.SliceDataset`` hands to transforms."""
        return {
            "padding_left": self.padding_left,
            "padding_right": self.padding_right,
            "encoding_size": self.encoding_size,
            "recon_size": self.recon_size,
            **self.attrs,
        }


def plain_value(value: Any) -> Any:
    """An HDF5 attribute or scalar dataset value -> a plain Python value (bytes decoded as UTF-8)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _header_sizes(path: Path, xml: bytes | str) -> tuple[tuple[int, int, int], tuple[int, int, int], int, int]:
    """Parse encoded size, recon size and the phase-encode encoding limits (centre, maximum)."""
    try:
        root = ET.fromstring(xml)
        enc = ["encoding", "encodedSpace", "matrixSize"]
        rec = ["encoding", "reconSpace", "matrixSize"]
        lims = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
        enc_size = tuple(int(et_query(root, enc + [a])) for a in "xyz")
        rec_size = tuple(int(et_query(root, rec + [a])) for a in "xyz")
        center = int(et_query(root, lims + ["center"]))
        maximum = int(et_query(root, lims + ["maximum"]))
    except ET.ParseError as err:
        raise InvalidInputError(path, f"ismrmrd_header is not valid XML ({err})") from None
    except (RuntimeError, ValueError) as err:
        raise InvalidInputError(
            path, f"ismrmrd_header lacks encoded/recon matrix sizes or encoding limits ({err})"
        ) from None
    return enc_size, rec_size, center, maximum  # type: ignore[return-value]


def check_finite(path: Path, name: str, dset: h5py.Dataset, refuse_all_zero: bool = False) -> None:
    """Read a dataset slice by slice (bounded memory) and reject NaN/Inf (and, if asked, all zeros)."""
    any_nonzero = False
    for s in range(dset.shape[0]):
        try:
            block = dset[s]
        except (OSError, RuntimeError) as err:
            raise InvalidInputError(
                path, f"cannot read '{name}' slice {s}: truncated or corrupt; copy the complete file again", str(err)
            ) from None
        if not np.isfinite(block).all():
            raise InvalidInputError(path, f"'{name}' contains NaN or Inf values (slice {s})")
        any_nonzero = any_nonzero or bool(np.any(block))
    if refuse_all_zero and not any_nonzero:
        raise InvalidInputError(path, f"'{name}' is all zeros; there is nothing to reconstruct")


def validate_file(
    path: str | os.PathLike, challenge: str | None = None, check_values: bool = True, limits: Limits | None = None
) -> FileInfo:
    """Check one fastMRI HDF5 file and describe it.

    Args:
        path: the ``.h5`` file.
        challenge: ``"multicoil"`` / ``"singlecoil"`` to require one; ``None`` infers it from the
            k-space rank (4 -> multicoil, 3 -> singlecoil).
        check_values: also read every slice and reject NaN/Inf and all-zero k-space (slower for big files).
        limits: size caps (default :meth:`Limits.from_env`).

    Raises:
        InvalidInputError: naming the file and the first problem found.
    """
    path = Path(path)
    if challenge is not None and challenge not in RECON_KEYS:
        raise ValueError(f"challenge must be 'multicoil' or 'singlecoil', not {challenge!r}")
    hf = open_hdf5(path)
    try:
        with hf:
            return _validate_open(path, hf, challenge, check_values, limits or Limits.from_env())
    except InvalidInputError:
        raise
    except (OSError, RuntimeError, KeyError) as err:
        raise corrupt_hdf5(path, err) from None


def _validate_open(path: Path, hf: h5py.File, challenge: str | None, check_values: bool, limits: Limits) -> FileInfo:
    if "kspace" not in hf:
        raise InvalidInputError(path, f"missing dataset 'kspace' (file has: {sorted(hf.keys()) or 'nothing'})")
    ksp = hf["kspace"]
    if not isinstance(ksp, h5py.Dataset):
        raise InvalidInputError(path, "'kspace' is a group, expected a dataset")
    dt = ksp.dtype
    if dt.kind == "f":
        raise InvalidInputError(path, f"k-space is real-valued ({dt}); expected complex64")
    if dt.kind != "c":
        raise InvalidInputError(path, f"k-space has dtype {dt}; expected complex64")

    rank = ksp.ndim
    if challenge is None:
        if rank not in (3, 4):
            raise InvalidInputError(
                path,
                f"k-space has rank {rank} (shape {ksp.shape}); expected 4 [slices, coils, H, W] or 3 [slices, H, W]",
            )
        challenge = "multicoil" if rank == 4 else "singlecoil"
    elif rank != KSPACE_RANK[challenge]:
        layout = "[slices, coils, H, W]" if challenge == "multicoil" else "[slices, H, W]"
        raise InvalidInputError(path, f"k-space has rank {rank} (shape {ksp.shape}); {challenge} expects {layout}")
    kshape = tuple(int(n) for n in ksp.shape)
    if min(kshape) == 0:
        raise InvalidInputError(path, f"k-space is empty (shape {kshape})")
    H, W = kshape[-2:]
    if min(H, W) < limits.min_matrix:
        raise InvalidInputError(
            path, f"k-space matrix {H}x{W} is too small to reconstruct (at least {limits.min_matrix} per side)"
        )
    check_dataset_size(path, "kspace", ksp, limits)

    attrs = {k: plain_value(v) for k, v in hf.attrs.items()}

    mask = None
    if "mask" in hf:
        mask_dset = hf["mask"]
        if not isinstance(mask_dset, h5py.Dataset) or mask_dset.shape != (W,):
            shape = getattr(mask_dset, "shape", None)
            raise InvalidInputError(path, f"mask shape {shape} does not match the k-space width {W} (expected ({W},))")
        mask_raw = np.asarray(mask_dset[()])
        if mask_raw.dtype.kind not in "biuf" or not np.isin(mask_raw, (0, 1)).all():
            raise InvalidInputError(path, "mask must hold only 0/1 values")
        mask = mask_raw.astype(bool)
        if not mask.any():
            raise InvalidInputError(path, "mask selects no k-space column")

    recon_key = RECON_KEYS[challenge] if RECON_KEYS[challenge] in hf else None
    if recon_key is not None and not isinstance(hf[recon_key], h5py.Dataset):
        raise InvalidInputError(path, f"'{recon_key}' is a group, expected a dataset")
    target_shape = tuple(int(n) for n in hf[recon_key].shape) if recon_key else None

    xml = read_header_xml(path, hf)
    if xml is not None:
        enc_size, rec_size, center, maximum = _header_sizes(path, xml)
        if min(enc_size) < 1 or min(rec_size) < 1 or not (1 <= rec_size[0] <= H and 1 <= rec_size[1] <= W):
            raise InvalidInputError(
                path,
                f"ismrmrd_header matrix sizes are not usable: encoded {enc_size}, recon {rec_size} "
                f"(recon x, y must lie in 1..{H}, 1..{W}, the k-space size)",
            )
        padding_left = enc_size[1] // 2 - center
        padding_right = padding_left + maximum + 1
        crop = (rec_size[0], rec_size[1])
        has_header = True
    else:
        padding_left, padding_right = 0, W
        crop = (target_shape[-2], target_shape[-1]) if target_shape else (min(H, W), W)
        enc_size, rec_size = (H, W, 1), (crop[0], crop[1], 1)
        has_header = False
    if not (0 <= padding_left < padding_right <= W):
        raise InvalidInputError(
            path, f"ismrmrd_header encoding limits give columns [{padding_left}, {padding_right}) outside 0..{W}"
        )

    if recon_key is not None:
        tgt = hf[recon_key]
        check_dataset_size(path, recon_key, tgt, limits)
        if tgt.dtype.kind != "f":
            raise InvalidInputError(path, f"'{recon_key}' has dtype {tgt.dtype}; expected float32")
        if (
            len(target_shape) != 3
            or target_shape[0] != kshape[0]
            or target_shape[1] < crop[0]
            or target_shape[2] < crop[1]
        ):
            raise InvalidInputError(
                path,
                f"target shape mismatch: '{recon_key}' is {target_shape}, expected "
                f"({kshape[0]}, >={crop[0]}, >={crop[1]}) for k-space {kshape} and crop size {crop}",
            )

    if check_values:
        check_finite(path, "kspace", ksp, refuse_all_zero=True)
        if recon_key is not None:
            check_finite(path, recon_key, hf[recon_key])

    is_test = mask is not None and recon_key is None
    acc = attrs.get("acceleration")
    nlf = attrs.get("num_low_frequency")
    return FileInfo(
        path=path,
        challenge=challenge,
        is_test_format=is_test,
        kspace_shape=kshape,
        recon_key=recon_key,
        target_shape=target_shape,
        crop_size=crop,
        encoding_size=tuple(enc_size),
        recon_size=tuple(rec_size),
        padding_left=padding_left,
        padding_right=padding_right,
        has_header=has_header,
        mask=mask,
        acceleration=int(acc) if acc is not None else None,
        num_low_frequencies=int(nlf) if nlf is not None else None,
        attrs=attrs,
    )
