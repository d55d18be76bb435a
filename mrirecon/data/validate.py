"""Input validation for fastMRI-format HDF5 files: the one gate every entry point goes through.

Every file is checked here before any other code touches it, so that a bad file produces one
:class:`~mrirecon.io.InputError` naming the file and the problem instead of a traceback from h5py or torch.

Hostile files are refused by :mod:`mrirecon.io.hdf5` (links, external storage, declared sizes against
:class:`Limits`) before a byte is read; values are checked here slice by slice.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from fastmri.data.mri_data import et_query

from mrirecon.io.errors import InputError
from mrirecon.io.hdf5 import (  # noqa: F401  (re-exported: the data layer's names)
    MAX_HEADER_BYTES,
    MAX_OBJECTS,
    Limits,
    check_dataset_size,
    check_hdf5_contents,
    check_hdf5_file,
    corrupt_hdf5,
    format_size,
    open_hdf5,
    parse_size,
)

InvalidInputError = InputError  # the data layer's name for :class:`mrirecon.io.InputError`

RECON_KEYS = {"multicoil": "reconstruction_rss", "singlecoil": "reconstruction_esc"}
KSPACE_RANK = {"multicoil": 4, "singlecoil": 3}


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
