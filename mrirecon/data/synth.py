"""The embedded dataset: simulated multi-coil brain k-space in fastMRI's HDF5 format.

Anatomy: the MNI152 2009a T1 template shipped in the nilearn wheel (main splits) and real single-subject
slices shipped in the dipy wheel, or the user's own files (``--shift-anatomy``), for the "shift" split
(:mod:`mrirecon.data.sources`). Physics: through
:mod:`mrirecon.physics`. Deterministic from ``seed``. This module builds the volumes of either simulator
and writes them; the simulators themselves are :mod:`mrirecon.data.presets` and :mod:`mrirecon.data.randomsim`.

Layout under ``root``::

    train/ val/ test/          fully sampled: kspace, reconstruction_rss, ismrmrd_header, attrs
    test_format/               the test split undersampled 4x and 8x (kspace, mask; no target)
    test_truth/                their ground truth (reconstruction_rss, same file names)
    shift_test_format/         other anatomy, 12-16 coils, 2x readout oversampling, 4x and 8x
    shift_truth/               its ground truth
    physics_test_format/       (``random*`` presets) coil model, noise and matrix outside the training ranges
    physics_truth/             its ground truth
    shift/ physics/            (``--full-shift-splits`` only) those splits fully sampled, for the harness's other masks

The presets ``small``/``full``/``tiny`` are the original simulator (:mod:`mrirecon.data.presets`); ``random``,
``random-small`` and ``random-tiny`` are the physics-randomised one (:mod:`mrirecon.data.randomsim`).

Run ``python -m mrirecon.data.synth [--out data/synth] [--preset small|full|random|...] [--seed 0]``.
"""

from __future__ import annotations

import argparse
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

from mrirecon.data import randomsim
from mrirecon.data.ismrmrd import make_header
from mrirecon.data.presets import PRESETS, Preset, simulate_preset
from mrirecon.data.randomsim import SIM_PRESETS, SimConfig
from mrirecon.data.sources import load_mni, load_shift_sources
from mrirecon.io.files import write_atomically, write_text_atomically
from mrirecon.physics import file_mask

FORMAT_VERSION = 1
MARKER = ".synth.json"
SPLIT_CODES = {"train": 1, "val": 2, "test": 3, "shift": 4, "physics": 5}


PRESET_NAMES = (*PRESETS, *SIM_PRESETS)


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
    mask, nlf = file_mask(fname, vol.kspace.shape[-1], "equispaced_fraction", acceleration)
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


@dataclass(frozen=True)
class Acquired:
    """What either simulator gives for one volume, before naming: k-space complex64 [S,C,H,W], target [S,h,w]."""

    kspace: np.ndarray
    target: np.ndarray
    acquisition: str
    recon: tuple[int, int]
    pixel_mm: float
    num_coils: int


def _sim_volume(split: str, index: int, seed: int, acquired: Acquired, **attrs: object) -> SimVolume:
    """A simulated volume with its ISMRMRD header, file name and patient id (``attrs``: extra file attributes)."""
    kspace, acq = acquired.kspace, acquired.acquisition
    header = make_header(
        encoded=kspace.shape[-2:],
        recon=acquired.recon,
        pixel_mm=acquired.pixel_mm,
        num_coils=acquired.num_coils,
        num_slices=kspace.shape[0],
        protocol=acq,
    )
    return SimVolume(
        name=f"synth_{split}_{index:03d}",
        kspace=kspace,
        target=acquired.target,
        header=header,
        acquisition=acq,
        patient_id=f"synth-{seed}-{split}-{index:03d}",
        extra_attrs=attrs,
    )


def build_random_volume(split: str, index: int, cfg: SimConfig, seed: int) -> SimVolume:
    """One volume of the physics-randomised simulator; the stream depends only on (seed, split, index)."""
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    sources = load_shift_sources(cfg.shift_anatomy) if split == "shift" else None
    source = sources[index % len(sources)] if sources else None
    kspace, target, draw, acq = randomsim.simulate(cfg, split, rng, source)
    acquired = Acquired(kspace, target, acq, draw.matrix[2:], draw.pixel_mm, draw.num_coils)
    return _sim_volume(split, index, seed, acquired, synth_params=randomsim.draw_json(draw))


def build_volume(
    split: str, index: int, preset: Preset | SimConfig, seed: int, mni: np.ndarray | None, shift_sources: list | None
) -> SimVolume:
    """Simulate one volume; the random stream depends only on (seed, split, index)."""
    if isinstance(preset, SimConfig):
        return build_random_volume(split, index, preset, seed)
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    source = shift_sources[index % len(shift_sources)] if split == "shift" else None
    kspace, target, num_coils, acq = simulate_preset(preset, split, mni, source, rng)
    acquired = Acquired(kspace, target, acq, preset.image, preset.pixel_mm, num_coils)
    return _sim_volume(split, index, seed, acquired)


TEST_DIRS = {
    "test": ("test_format", "test_truth"),
    "shift": ("shift_test_format", "shift_truth"),
    "physics": ("physics_test_format", "physics_truth"),
}


FULL_SPLITS = ("train", "val", "test")


def _write_volume(
    root: Path, split: str, i: int, cfg: Preset | SimConfig, seed: int, full_splits: tuple[str, ...] = FULL_SPLITS
) -> None:
    if isinstance(cfg, SimConfig):
        vol = build_random_volume(split, i, cfg, seed)
        accelerations = cfg.test_accelerations
    else:
        vol = build_volume(split, i, cfg, seed, load_mni(), load_shift_sources() if split == "shift" else None)
        accelerations = (4, 8)
    if split in full_splits:
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
    full_splits: tuple[str, ...] = FULL_SPLITS,
) -> Path:
    """Write the whole simulated dataset under ``root`` (existing files of the same names are replaced).
    Volumes are independent and seeded, so ``workers`` > 1 builds them in parallel with the same result.
    ``full_splits``: the splits also written fully sampled (``split/``)."""
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
            for future in [pool.submit(_write_volume, root, split, i, cfg, seed, full_splits) for split, i in jobs]:
                future.result()
                bar.update()
    else:
        for split, i in jobs:
            _write_volume(root, split, i, cfg, seed, full_splits)
            bar.update()
    bar.close()
    marker = {"format_version": FORMAT_VERSION, "preset": name, "seed": seed, **asdict(cfg)}
    marker["build_seconds"] = round(time.perf_counter() - t0, 2)
    write_text_atomically(root / MARKER, json.dumps(marker, indent=1))
    return root


SPLIT_DIRS = (*FULL_SPLITS, "shift", "physics", *(d for pair in TEST_DIRS.values() for d in pair))


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
    parser.add_argument(
        "--shift-anatomy",
        nargs="+",
        metavar="FILE",
        help="random* presets: real anatomy for the shift split from these NIfTI magnitude volumes (or .npy slices) "
        "instead of dipy's; volumes take the files in turn, their central slices (e.g. a validation set of subjects)",
    )
    parser.add_argument(
        "--full-shift-splits",
        action="store_true",
        help="also write the shift and physics splits fully sampled (shift/, physics/: the same volumes), so that "
        "the evaluation harness can undersample them with other masks (--mask-type)",
    )
    args = parser.parse_args(argv)
    preset: str | Preset | SimConfig = "full" if args.full else args.preset
    overrides = {f"n_{s}": getattr(args, f"{s}_volumes") for s in ("train", "val", "test", "shift", "physics")}
    overrides["slices"] = args.slices
    overrides["train_physics"] = args.train_physics
    overrides["shift_anatomy"] = tuple(args.shift_anatomy) if args.shift_anatomy else None
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        cfg = get_preset(preset)
        if ({"n_physics", "train_physics", "shift_anatomy"} & set(overrides)) and not isinstance(cfg, SimConfig):
            options = "--physics-volumes, --train-physics and --shift-anatomy"
            parser.error(f"{options} need a random* preset, not {preset!r}")
        if any(v < 0 for v in overrides.values() if isinstance(v, int)) or overrides.get("slices", 1) < 1:
            parser.error("volume counts must be >= 0 and --slices >= 1")
        preset = replace(cfg, **overrides)
    if args.shift_anatomy:
        try:
            load_shift_sources(tuple(args.shift_anatomy))  # a bad file stops here, named, before any volume
        except ValueError as exc:
            parser.error(str(exc))
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
    full = FULL_SPLITS + (("shift", "physics") if args.full_shift_splits else ())
    generate_dataset(
        root, preset=preset, seed=args.seed, progress=not args.quiet, workers=args.workers, name=name, full_splits=full
    )
    n = sum(1 for _ in root.glob("*/*.h5"))
    print(f"wrote {n} files under {root} in {time.perf_counter() - t0:.1f} s (preset {name}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
