"""Anatomy for the simulators: the MNI152 2009a T1 template (nilearn) and real single-subject slices for the
"shift" split (dipy's, both shipped inside installed wheels, no download; or a user's own NIfTI files), resampled
onto a simulator's image grid."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from scipy import ndimage

MNI_RELPATH = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
DIPY_FILES = ("S0_10slices.nii.gz", "aniso_vox.nii.gz", "t1_coronal_slice.npy")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the '{name}' package is needed for the embedded dataset; install the project")
    return Path(list(spec.submodule_search_locations)[0])


def mni_path() -> Path:
    """The MNI152 2009a T1 template inside the installed nilearn package (no import, no download)."""
    return package_dir("nilearn") / MNI_RELPATH


@functools.lru_cache(maxsize=1)
def load_mni() -> np.ndarray:
    """MNI152 T1 [197,233,189] (x=L-R, y=P-A, z=I-S), float32 in [0, 1]."""
    import nibabel as nib

    vol = np.asarray(nib.load(str(mni_path())).dataobj, dtype=np.float32)
    return vol / vol.max()


def read_anatomy(path: Path) -> tuple[np.ndarray, float]:
    """A magnitude volume from NIfTI (first volume of 4-D data) or a .npy slice -> ([X,Y,Z] float32 in [0,1],
    in-plane mm); a file that is not one names itself in the error."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        if path.suffix == ".npy":
            vol, mm = np.load(path, allow_pickle=False), 1.0
        else:
            img = nib.load(str(path))
            vol, mm = np.asarray(img.dataobj), float(img.header.get_zooms()[0])
    except (OSError, ValueError, ImageFileError) as exc:
        raise ValueError(f"{path}: not a readable NIfTI volume or .npy slice ({exc})") from exc
    if vol.ndim == 2:
        vol = vol[:, :, None]
    if vol.ndim < 2 or min(vol.shape[:2]) < 8 or not np.issubdtype(vol.dtype, np.number):
        raise ValueError(f"{path}: expected a 2-D or 3-D magnitude image of at least 8 x 8, got shape {vol.shape}")
    vol = np.clip(vol[(...,) + (0,) * (vol.ndim - 3)].astype(np.float32), 0, None)
    if not np.isfinite(vol).all() or vol.max() <= 0:
        raise ValueError(f"{path}: the image is empty or holds non-finite values")
    vol /= max(float(np.percentile(vol, 99.8)), 1e-12)
    return np.clip(vol, 0, 1), mm


@functools.lru_cache(maxsize=4)
def load_shift_sources(files: tuple[str, ...] = ()) -> list[tuple[str, np.ndarray, float]]:
    """Real single-subject anatomy for the shift split: (label, [X,Y,Z] float32 in [0,1], in-plane mm).
    By default the slices shipped with dipy (labels ``dipy-NAME``); ``files`` (NIfTI volumes or .npy slices, e.g.
    a validation set of other subjects) replace them (labels ``file-NAME``)."""
    if files:
        paths, prefix = [Path(f) for f in files], "file"
    else:
        paths, prefix = [package_dir("dipy") / "data" / "files" / name for name in DIPY_FILES], "dipy"
    return [(f"{prefix}-{path.name.split('.')[0]}", *read_anatomy(path)) for path in paths]


def affine_slices(
    slices: np.ndarray, out_shape: tuple[int, int], in_mm: float, out_mm: float, rng: np.random.Generator, augment: bool
) -> np.ndarray:
    """Resample [S,a,b] slices onto an (h, w) grid with one random flip/rotation/scaling per volume."""
    h, w = out_shape
    a, b = slices.shape[1:]
    zoom = out_mm / in_mm
    theta, scale, shift, flips = 0.0, 1.0, np.zeros(2), (False, False)
    if augment:
        theta = np.deg2rad(rng.uniform(-10, 10))
        scale = rng.uniform(0.88, 1.12)
        shift = rng.uniform(-0.04, 0.04, size=2) * np.array([h, w])
        flips = (bool(rng.random() < 0.2), bool(rng.random() < 0.5))
    # fit the object into ~95% of the grid when it would not fit at the requested pixel size
    zoom = max(zoom, max(a / (0.95 * h), b / (0.95 * w)) * 0.8)
    c, s = np.cos(theta), np.sin(theta)
    mat = np.array([[c, -s], [s, c]]) * (zoom / scale)
    centre_out = np.array([(h - 1) / 2, (w - 1) / 2]) + shift
    offset = np.array([(a - 1) / 2, (b - 1) / 2]) - mat @ centre_out
    sigma = max(0.0, 0.5 * (zoom / scale - 1.0))
    out = np.empty((len(slices), h, w), np.float32)
    for i, sl in enumerate(slices):
        src = ndimage.gaussian_filter(sl, sigma) if sigma > 0 else sl
        out[i] = ndimage.affine_transform(src, mat, offset, output_shape=(h, w), order=1, mode="constant")
    if flips[0]:
        out = out[:, ::-1]
    if flips[1]:
        out = out[:, :, ::-1]
    return np.clip(out, 0, None)


def shift_anatomy(
    source: tuple[str, np.ndarray, float], n_slices: int, image: tuple[int, int], pixel_mm: float, rng
) -> tuple[np.ndarray, str]:
    """Up to ``n_slices`` central slices of a shift source on the (h, w) grid (no augmentation)."""
    name, vol, mm = source
    nz = vol.shape[2]
    k = min(n_slices, nz)
    start = max(0, (nz - k) // 2)
    sl = np.moveaxis(vol[:, :, start : start + k], 2, 0)
    sl = np.ascontiguousarray(np.rot90(sl, k=1, axes=(1, 2)))
    return affine_slices(sl, image, mm, pixel_mm, rng, augment=False), name
