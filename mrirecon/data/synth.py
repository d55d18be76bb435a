"""The embedded dataset: simulated multi-coil brain k-space in fastMRI's HDF5 format.

Anatomy: the MNI152 2009a T1 template shipped in the nilearn wheel (main splits) and real single-subject
slices shipped in the dipy wheel (the "shift" split). Physics: sigpy birdcage coil maps (random ring
centre and radius), a smooth random phase, complex Gaussian noise, optional readout oversampling, all
through fastMRI's centred orthonormal FFT. Deterministic from ``seed``.

Layout under ``root``::

    train/ val/ test/          fully sampled: kspace, reconstruction_rss, ismrmrd_header, attrs
    test_format/               the test split undersampled 4x and 8x (kspace, mask; no target)
    test_truth/                their ground truth (reconstruction_rss, same file names)
    shift_test_format/         other anatomy, 12-16 coils, 2x readout oversampling, 4x and 8x
    shift_truth/               its ground truth
    physics_test_format/       (``random*`` presets) coil model, noise and matrix outside the training ranges
    physics_truth/             its ground truth

The presets ``small``/``full``/``tiny`` are the original simulator; ``random``, ``random-small`` and
``random-tiny`` are the physics-randomised one (:mod:`mrirecon.data.randomsim`).

Run ``python -m mrirecon.data.synth [--out data/synth] [--preset small|full|random|...] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage

from mrirecon.data import randomsim
from mrirecon.data.ismrmrd import make_header
from mrirecon.data.masks import STANDARD_PAIRS, fixed_seed, make_mask_func, sample_mask
from mrirecon.data.randomsim import SIM_PRESETS, SimConfig
from mrirecon.io.files import write_atomically, write_text_atomically
from mrirecon.physics import fft2c_np, zero_filled_rss_np

FORMAT_VERSION = 1
MARKER = ".synth.json"
MNI_RELPATH = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
DIPY_FILES = ("S0_10slices.nii.gz", "aniso_vox.nii.gz", "t1_coronal_slice.npy")
SPLIT_CODES = {"train": 1, "val": 2, "test": 3, "shift": 4, "physics": 5}


@dataclass(frozen=True)
class Preset:
    """Sizes of a simulated dataset. ``image`` is the target (h, w); k-space is (os*h, w)."""

    image: tuple[int, int]
    oversampling: int
    coils: tuple[int, int]  # inclusive range, drawn per volume
    slices: int
    n_train: int
    n_val: int
    n_test: int
    n_shift: int
    shift_coils: tuple[int, int] = (12, 16)
    shift_oversampling: int = 2
    snr: float = 100.0
    pixel_mm: float = 1.8


PRESETS: dict[str, Preset] = {
    # for unit tests: seconds to build
    "tiny": Preset((128, 128), 1, (8, 8), 2, 2, 1, 2, 1),
    # the default: CPU training of a small model takes minutes
    "small": Preset((128, 128), 1, (8, 8), 6, 20, 4, 4, 3),
    # fastMRI brain size: 16 coils, k-space 640x320, target 320x320, 16 slices
    "full": Preset((320, 320), 2, (16, 16), 16, 16, 4, 4, 3, shift_coils=(16, 16), pixel_mm=0.7),
}


PRESET_NAMES = (*PRESETS, *SIM_PRESETS)


# ----------------------------------------------------------------------------------------------
# anatomy


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the '{name}' package is needed for the embedded dataset; install the project")
    return Path(list(spec.submodule_search_locations)[0])


def mni_path() -> Path:
    """The MNI152 2009a T1 template inside the installed nilearn package (no import, no download)."""
    return _package_dir("nilearn") / MNI_RELPATH


@functools.lru_cache(maxsize=1)
def load_mni() -> np.ndarray:
    """MNI152 T1 [197,233,189] (x=L-R, y=P-A, z=I-S), float32 in [0, 1]."""
    import nibabel as nib

    vol = np.asarray(nib.load(str(mni_path())).dataobj, dtype=np.float32)
    return vol / vol.max()


@functools.lru_cache(maxsize=1)
def load_shift_sources() -> list[tuple[str, np.ndarray, float]]:
    """Real single-subject slices shipped with dipy: (name, [X,Y,Z] float32 in [0,1], in-plane mm)."""
    import nibabel as nib

    root = _package_dir("dipy") / "data" / "files"
    out = []
    for name in DIPY_FILES:
        if name.endswith(".npy"):
            vol = np.load(root / name, allow_pickle=False)[:, :, None]
            mm = 1.0
        else:
            img = nib.load(str(root / name))
            vol = np.asarray(img.dataobj)
            vol = vol.reshape(vol.shape[:3])
            mm = float(img.header.get_zooms()[0])
        vol = np.clip(vol.astype(np.float32), 0, None)
        vol /= max(float(np.percentile(vol, 99.8)), 1e-12)
        out.append((name.split(".")[0], np.clip(vol, 0, 1), mm))
    return out


def _intensity_warp(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """A random piecewise-linear intensity map (knots x -> y) and its contrast label.

    Knots sit at the template's background, CSF, grey-matter and white-matter levels; T1-like maps
    keep the template's order, T2-like maps (30%) make fluid brightest and white matter darkest.
    """
    x = np.array([0.0, 0.08, 0.3, 0.62, 0.84, 1.0])
    if rng.random() < 0.3:
        csf, gm, wm = rng.uniform(0.8, 1.0), rng.uniform(0.5, 0.7), rng.uniform(0.3, 0.45)
        label = "T2"
    else:
        csf, gm, wm = rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.65), rng.uniform(0.75, 0.95)
        label = "T1"
    y = np.array([0.0, 0.4 * csf, csf, gm, wm, wm * rng.uniform(1.0, 1.08)])
    return x, y, label


def _affine_slices(
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


def mni_anatomy(
    mni: np.ndarray, n_slices: int, image: tuple[int, int], pixel_mm: float, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """A stack of [n_slices, h, w] magnitude slices from the template, augmented; plus the acquisition name."""
    orient = rng.choice(["AX", "COR", "SAG"], p=[0.5, 0.25, 0.25])
    axis = {"AX": 2, "COR": 1, "SAG": 0}[orient]
    profile = (mni > 0.1).mean(axis=tuple(i for i in range(3) if i != axis))
    idx = np.flatnonzero(profile > 0.5 * profile.max())
    step = int(rng.integers(2, 5))
    span = step * (n_slices - 1)
    lo, hi = idx[0], max(idx[0], idx[-1] - span)
    start = int(rng.integers(lo, hi + 1))
    picks = [min(start + k * step, mni.shape[axis] - 1) for k in range(n_slices)]
    sl = np.moveaxis(np.take(mni, picks, axis=axis), axis, 0)  # [S, a, b]
    sl = np.ascontiguousarray(np.rot90(sl, k=1, axes=(1, 2)))  # superior/anterior up
    out = _affine_slices(sl, image, 1.0, pixel_mm, rng, augment=True)
    xk, yk, contrast = _intensity_warp(rng)
    out = np.interp(out, xk, yk).astype(np.float32)
    # smooth multiplicative bias field (receive/transmit inhomogeneity not captured by the coils)
    coarse = rng.normal(0, 0.12, size=(3, 3))
    bias = 1.0 + ndimage.zoom(coarse, (image[0] / 3, image[1] / 3), order=3)[: image[0], : image[1]]
    return out * np.clip(bias, 0.6, 1.4)[None], f"{orient}{contrast}"


def shift_anatomy(
    source: tuple[str, np.ndarray, float], n_slices: int, image: tuple[int, int], pixel_mm: float, rng
) -> tuple[np.ndarray, str]:
    """Up to ``n_slices`` central slices of a dipy volume on the (h, w) grid (no augmentation)."""
    name, vol, mm = source
    nz = vol.shape[2]
    k = min(n_slices, nz)
    start = max(0, (nz - k) // 2)
    sl = np.moveaxis(vol[:, :, start : start + k], 2, 0)
    sl = np.ascontiguousarray(np.rot90(sl, k=1, axes=(1, 2)))
    return _affine_slices(sl, image, mm, pixel_mm, rng, augment=False), f"dipy-{name}"


# ----------------------------------------------------------------------------------------------
# physics


def coil_maps(num_coils: int, grid: tuple[int, int], obj: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Birdcage maps [C, H, W] (complex64, RSS = 1) with a random ring radius and centre.

    The ring radius is 1.05-1.6x the object half-size; the ring centre moves by up to 8% of it.
    """
    import sigpy.mri

    H, W = grid
    half = max(obj) / 2
    margin = int(np.ceil(0.08 * max(obj)))
    n = max(H, W) + 2 * margin
    radius = rng.uniform(1.05, 1.6) * half / (n / 2)
    maps = sigpy.mri.birdcage_maps((num_coils, n, n), r=radius, dtype=np.complex64)
    maps = np.nan_to_num(maps)
    if rng.random() < 0.5:
        maps = maps[:, ::-1]
    if rng.random() < 0.5:
        maps = maps[:, :, ::-1]
    dy, dx = rng.integers(-margin, margin + 1, size=2)
    y0, x0 = (n - H) // 2 + dy, (n - W) // 2 + dx
    return np.ascontiguousarray(maps[:, y0 : y0 + H, x0 : x0 + W])


def smooth_phase(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random phase map [H, W] in radians (low-order field plus a linear ramp)."""
    H, W = shape
    coarse = rng.normal(0, 1.0, size=(4, 4))
    field = ndimage.zoom(coarse, (H / 4, W / 4), order=3)[:H, :W]
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    ramp = rng.uniform(-1, 1) * yy + rng.uniform(-1, 1) * xx
    return (field + ramp).astype(np.float32)


def simulate_kspace(
    anatomy: np.ndarray, num_coils: int, oversampling: int, snr: float, peak: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Anatomy [S,h,w] -> (k-space complex64 [S,C,os*h,w], RSS target float32 [S,h,w]).

    The object is centred in a readout field of view ``oversampling`` times larger; ``peak`` sets
    the target maximum (fastMRI-like magnitudes); ``snr`` = mean object magnitude / noise std per coil.
    """
    S, h, w = anatomy.shape
    H = h * oversampling
    img = np.zeros((S, H, w), np.float32)
    top = (H - h) // 2
    img[:, top : top + h] = anatomy
    maps = coil_maps(num_coils, (H, w), (h, w), rng)
    phase = smooth_phase((H, w), rng)
    img = img / max(float(img.max()), 1e-12) * peak
    fg = img[img > 0.1 * peak]
    sigma = float(fg.mean() if fg.size else peak) / snr
    coil_img = maps[None] * (img * np.exp(1j * phase)[None])[:, None]
    kspace = fft2c_np(coil_img)
    noise = rng.standard_normal((2, *kspace.shape), dtype=np.float32) * np.float32(sigma / np.sqrt(2))
    kspace = (kspace + (noise[0] + 1j * noise[1])).astype(np.complex64)
    return kspace, zero_filled_rss_np(kspace, (h, w))


# ----------------------------------------------------------------------------------------------
# files


def _atomic_h5(path: Path, datasets: dict[str, np.ndarray | str], attrs: dict[str, object]) -> None:
    """Write one HDF5 file under a temporary name, then rename it into place."""

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as hf:
            for key, value in datasets.items():
                hf.create_dataset(key, data=value, track_times=False)
            for key, value in attrs.items():
                hf.attrs[key] = value

    write_atomically(path, write, ".h5")


@dataclass
class SimVolume:
    name: str
    kspace: np.ndarray  # complex64 [S,C,H,W]
    target: np.ndarray  # float32 [S,h,w]
    header: str
    acquisition: str
    patient_id: str
    extra_attrs: dict[str, object] = field(default_factory=dict)


def _common_attrs(vol: SimVolume) -> dict[str, object]:
    return {
        "max": np.float64(vol.target.max()),
        "norm": np.float64(np.linalg.norm(vol.target)),
        "acquisition": vol.acquisition,
        "patient_id": vol.patient_id,
        **vol.extra_attrs,
    }


def write_full(path: Path, vol: SimVolume) -> None:
    """A train/val-format file: fully sampled kspace + reconstruction_rss."""
    _atomic_h5(
        path,
        {"kspace": vol.kspace, "reconstruction_rss": vol.target, "ismrmrd_header": vol.header},
        _common_attrs(vol),
    )


def write_test_pair(fmt_dir: Path, truth_dir: Path, vol: SimVolume, acceleration: int) -> str:
    """A test-format file (masked kspace + mask, no target) and its ground truth; returns the file name."""
    fname = f"{vol.name}_acc{acceleration}.h5"
    func = make_mask_func("equispaced_fraction", [acceleration], [STANDARD_PAIRS[acceleration]])
    mask, nlf = sample_mask(func, vol.kspace.shape[-1], seed=fixed_seed(fname))
    masked = (vol.kspace * mask[None, None, None, :]).astype(np.complex64)
    test_attrs = {
        "acceleration": np.int64(acceleration),
        "num_low_frequency": np.int64(nlf),
        "acquisition": vol.acquisition,
        "patient_id": vol.patient_id,
        **vol.extra_attrs,
    }
    _atomic_h5(fmt_dir / fname, {"kspace": masked, "mask": mask, "ismrmrd_header": vol.header}, test_attrs)
    truth_attrs = {**_common_attrs(vol), "acceleration": np.int64(acceleration)}
    _atomic_h5(truth_dir / fname, {"reconstruction_rss": vol.target, "ismrmrd_header": vol.header}, truth_attrs)
    return fname


def _volumes(preset: Preset | SimConfig) -> Iterator[tuple[str, int]]:
    """(split, index) for every volume, in a fixed order."""
    if isinstance(preset, SimConfig):
        counts = preset.counts()
    else:
        counts = {"train": preset.n_train, "val": preset.n_val, "test": preset.n_test, "shift": preset.n_shift}
    for split, n in counts.items():
        for i in range(n):
            yield split, i


def build_random_volume(split: str, index: int, cfg: SimConfig, seed: int) -> SimVolume:
    """One volume of the physics-randomised simulator; the stream depends only on (seed, split, index)."""
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    sources = load_shift_sources() if split == "shift" else None
    source = sources[index % len(sources)] if sources else None
    kspace, target, draw, acq = randomsim.simulate(cfg, split, rng, source)
    header = make_header(
        encoded=kspace.shape[-2:],
        recon=draw.matrix[2:],
        pixel_mm=draw.pixel_mm,
        num_coils=draw.num_coils,
        num_slices=kspace.shape[0],
        protocol=acq,
    )
    return SimVolume(
        name=f"synth_{split}_{index:03d}",
        kspace=kspace,
        target=target,
        header=header,
        acquisition=acq,
        patient_id=f"synth-{seed}-{split}-{index:03d}",
        extra_attrs={"synth_params": randomsim.draw_json(draw)},
    )


def build_volume(
    split: str, index: int, preset: Preset | SimConfig, seed: int, mni: np.ndarray | None, shift_sources: list | None
) -> SimVolume:
    """Simulate one volume; the random stream depends only on (seed, split, index)."""
    if isinstance(preset, SimConfig):
        return build_random_volume(split, index, preset, seed)
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    if split == "shift":
        anatomy, acq = shift_anatomy(
            shift_sources[index % len(shift_sources)], preset.slices, preset.image, preset.pixel_mm, rng
        )
        coils_lo, coils_hi = preset.shift_coils
        os_ = preset.shift_oversampling
    else:
        anatomy, acq = mni_anatomy(mni, preset.slices, preset.image, preset.pixel_mm, rng)
        coils_lo, coils_hi = preset.coils
        os_ = preset.oversampling
    num_coils = int(rng.integers(coils_lo, coils_hi + 1))
    peak = float(np.exp(rng.uniform(np.log(3e-4), np.log(1.2e-3))))
    kspace, target = simulate_kspace(anatomy, num_coils, os_, preset.snr, peak, rng)
    h, w = preset.image
    header = make_header(
        encoded=kspace.shape[-2:],
        recon=(h, w),
        pixel_mm=preset.pixel_mm,
        num_coils=num_coils,
        num_slices=kspace.shape[0],
        protocol=acq,
    )
    return SimVolume(
        name=f"synth_{split}_{index:03d}",
        kspace=kspace,
        target=target,
        header=header,
        acquisition=acq,
        patient_id=f"synth-{seed}-{split}-{index:03d}",
    )


TEST_DIRS = {
    "test": ("test_format", "test_truth"),
    "shift": ("shift_test_format", "shift_truth"),
    "physics": ("physics_test_format", "physics_truth"),
}


def _write_volume(root: Path, split: str, i: int, cfg: Preset | SimConfig, seed: int) -> None:
    if isinstance(cfg, SimConfig):
        vol = build_random_volume(split, i, cfg, seed)
        accelerations = cfg.test_accelerations
    else:
        vol = build_volume(split, i, cfg, seed, load_mni(), load_shift_sources() if split == "shift" else None)
        accelerations = (4, 8)
    if split in ("train", "val", "test"):
        write_full(root / split / f"{vol.name}.h5", vol)
    targets = TEST_DIRS
    if split in targets:
        for acc in accelerations:
            write_test_pair(root / targets[split][0], root / targets[split][1], vol, acc)


def _one_thread() -> None:
    """Pool workers: one torch thread each, so that parallel volumes do not oversubscribe the cores."""
    import torch

    torch.set_num_threads(1)


def generate_dataset(
    root: str | os.PathLike,
    preset: str | Preset | SimConfig = "small",
    seed: int = 0,
    progress: bool = True,
    workers: int = 1,
    name: str | None = None,
) -> Path:
    """Write the whole simulated dataset under ``root`` (existing files of the same names are replaced).
    Volumes are independent and seeded, so ``workers`` > 1 builds them in parallel with the same result."""
    root = Path(root)
    cfg = get_preset(preset) if isinstance(preset, str) else preset
    name = name or (preset if isinstance(preset, str) else "custom")
    jobs = list(_volumes(cfg))
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=f"simulating {name} dataset -> {root}", unit="vol", disable=not progress)
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
            for future in [pool.submit(_write_volume, root, split, i, cfg, seed) for split, i in jobs]:
                future.result()
                bar.update()
    else:
        for split, i in jobs:
            _write_volume(root, split, i, cfg, seed)
            bar.update()
    bar.close()
    marker = {"format_version": FORMAT_VERSION, "preset": name, "seed": seed, **asdict(cfg)}
    marker["build_seconds"] = round(time.perf_counter() - t0, 2)
    write_text_atomically(root / MARKER, json.dumps(marker, indent=1))
    return root


SPLIT_DIRS = ("train", "val", "test", *(d for pair in TEST_DIRS.values() for d in pair))


def is_complete(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a finished simulated dataset."""
    return (Path(root) / MARKER).is_file()


def get_preset(name: str) -> Preset | SimConfig:
    """A preset by name: the original simulator's (``PRESETS``) or the randomised one's (``SIM_PRESETS``)."""
    if name in PRESETS:
        return PRESETS[name]
    if name in SIM_PRESETS:
        return SIM_PRESETS[name]
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")


def ensure_dataset(
    root: str | os.PathLike, preset: str = "small", seed: int = 0, progress: bool = True, workers: int = 1
) -> Path:
    """Generate the simulated dataset under ``root`` unless a finished one is already there."""
    root = Path(root)
    if not is_complete(root):
        generate_dataset(root, preset=preset, seed=seed, progress=progress, workers=workers)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mrirecon.data.synth", description="Write the simulated fastMRI-format dataset."
    )
    parser.add_argument("--out", default="data/synth", help="output folder (default: data/synth)")
    parser.add_argument("--preset", choices=PRESET_NAMES, default="small")
    parser.add_argument("--full", action="store_true", help="same as --preset full (fastMRI brain size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="rebuild even if a finished dataset exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--workers", type=int, default=1, help="volumes built in parallel (same result)")
    for split in ("train", "val", "test", "shift", "physics"):
        parser.add_argument(f"--{split}-volumes", type=int, help=f"override the preset's number of {split} volumes")
    parser.add_argument("--slices", type=int, help="override the preset's slices per volume")
    parser.add_argument(
        "--train-physics",
        choices=("default", "shift"),
        help="random* presets: 'shift' draws train/val/test from the physics-shift ranges (the shift gap's reference)",
    )
    args = parser.parse_args(argv)
    preset: str | Preset | SimConfig = "full" if args.full else args.preset
    overrides = {f"n_{s}": getattr(args, f"{s}_volumes") for s in ("train", "val", "test", "shift", "physics")}
    overrides["slices"] = args.slices
    overrides["train_physics"] = args.train_physics
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        cfg = get_preset(preset)
        if ({"n_physics", "train_physics"} & set(overrides)) and not isinstance(cfg, SimConfig):
            parser.error(f"--physics-volumes and --train-physics need a random* preset, not {preset!r}")
        if any(v < 0 for v in overrides.values() if isinstance(v, int)) or overrides.get("slices", 1) < 1:
            parser.error("volume counts must be >= 0 and --slices >= 1")
        preset = replace(cfg, **overrides)
    root = Path(args.out)
    if is_complete(root) and not args.overwrite:
        print(f"{root}: a simulated dataset is already there (use --overwrite to rebuild)")
        return 0
    if args.overwrite and is_complete(root):
        for sub in SPLIT_DIRS:
            shutil.rmtree(root / sub, ignore_errors=True)
        (root / MARKER).unlink()
    t0 = time.perf_counter()
    name = args.preset if not args.full else "full"
    generate_dataset(root, preset=preset, seed=args.seed, progress=not args.quiet, workers=args.workers, name=name)
    n = sum(1 for _ in root.glob("*/*.h5"))
    print(f"wrote {n} files under {root} in {time.perf_counter() - t0:.1f} s (preset {name}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
